ALTER TABLE pay_attempt DROP COLUMN asked_at;
