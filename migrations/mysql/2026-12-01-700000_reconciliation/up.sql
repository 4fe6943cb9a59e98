-- Daily reconciliation (对账) against each platform's bill. recon_run: one row per Beijing
-- day and provider, replaced when the day is run again (status done, not_ready: the bill
-- was not made yet, failed: error says why, naming the bill's line). recon_diff: every
-- difference of that run, with what was done (applied: a payment the shop had missed, paid
-- through apply_payment; alarm: for a person) and who resolved it.
CREATE TABLE recon_run (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    bill_date VARCHAR(10) NOT NULL,
    provider VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    payments INTEGER NOT NULL,
    payment_total BIGINT NOT NULL,
    refunds INTEGER NOT NULL,
    refund_total BIGINT NOT NULL,
    fee_e5 BIGINT NOT NULL,
    differences INTEGER NOT NULL,
    error VARCHAR(255) NULL,
    finished_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE UNIQUE INDEX uq_recon_run_day ON recon_run (bill_date, provider);

CREATE TABLE recon_diff (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    bill_date VARCHAR(10) NOT NULL,
    provider VARCHAR(16) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    out_trade_no VARCHAR(64) NULL,
    out_refund_no VARCHAR(64) NULL,
    order_id INTEGER NULL,
    shop_value VARCHAR(255) NOT NULL,
    platform_value VARCHAR(255) NOT NULL,
    action VARCHAR(16) NOT NULL,
    resolved_by VARCHAR(64) NULL,
    resolved_note VARCHAR(255) NULL,
    resolved_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX ix_recon_diff_day ON recon_diff (bill_date, provider);
