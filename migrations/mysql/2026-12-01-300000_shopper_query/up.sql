-- When a shopper's poll or 我已完成支付 last made the shop ask the platform about this
-- attempt: claimed by compare-and-set, so polls from any number of instances ask once.
ALTER TABLE pay_attempt ADD COLUMN asked_at DATETIME(6) NULL;
