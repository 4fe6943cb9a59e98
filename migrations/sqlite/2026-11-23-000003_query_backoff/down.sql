ALTER TABLE pay_attempt DROP COLUMN next_query_at;
ALTER TABLE pay_attempt DROP COLUMN query_count;
