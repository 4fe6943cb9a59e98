ALTER TABLE pay_attempt DROP COLUMN not_found_count;
ALTER TABLE refund DROP COLUMN next_try_at;
ALTER TABLE refund DROP COLUMN tries;
