-- Refunds the platform could not settle yet are retried with the same out_refund_no.
ALTER TABLE refund ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refund ADD COLUMN next_try_at DATETIME(6) NULL;
-- Queries the platform answered "no such trade": after a few the attempt ends.
ALTER TABLE pay_attempt ADD COLUMN not_found_count INTEGER NOT NULL DEFAULT 0;
