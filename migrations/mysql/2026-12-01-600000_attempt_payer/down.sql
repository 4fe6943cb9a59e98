ALTER TABLE pay_attempt DROP COLUMN payer;
