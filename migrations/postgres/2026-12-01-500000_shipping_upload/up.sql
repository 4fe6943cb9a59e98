-- WeChat's 发货信息管理: a mini-program order's parcel is reported to WeChat
-- (upload_shipping_info), or the merchant's settlement for it is held back. 0: not needed
-- (not paid in the mini-program), 1: to upload (retried at upload_next_at), 2: uploaded,
-- 3: refused by WeChat (upload_error says why; an admin resolves it).
ALTER TABLE shipment ADD COLUMN upload_status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shipment ADD COLUMN upload_tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shipment ADD COLUMN upload_next_at TIMESTAMP NULL;
ALTER TABLE shipment ADD COLUMN upload_error VARCHAR(255) NULL;

-- Server API tokens and credentials (the mini-program's access_token, WeChat Pay's platform
-- certificates), shared by every instance: one row per
-- app. lease_until is claimed by compare-and-set, so one instance refreshes at a time.
CREATE TABLE api_token (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    token TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP NULL,
    updated_at TIMESTAMP NOT NULL
);
