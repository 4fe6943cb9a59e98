DROP INDEX idx_orders_created ON orders;
DROP INDEX idx_refund_status ON refund;
DROP TABLE order_event;
ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN failed_logins;
