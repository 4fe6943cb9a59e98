ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TIMESTAMP NULL;

CREATE TABLE order_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    kind VARCHAR(32) NOT NULL,
    from_status INTEGER NULL,
    to_status INTEGER NULL,
    actor VARCHAR(64) NOT NULL,
    note VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    FOREIGN KEY (order_id) REFERENCES orders (id)
);

CREATE INDEX idx_order_event_order ON order_event (order_id);
CREATE INDEX idx_refund_status ON refund (status, created_at);
CREATE INDEX idx_orders_created ON orders (created_at);
