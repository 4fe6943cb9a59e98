-- The parcel an admin sent for an order: carrier and tracking number. One per order (UNIQUE):
-- a second 发货 of the same order, even from another instance at the same moment, is refused
-- by the index rather than recorded twice.
CREATE TABLE shipment (
    id SERIAL PRIMARY KEY,
    order_id INTEGER NOT NULL,
    carrier VARCHAR(32) NOT NULL,
    tracking_no VARCHAR(64) NOT NULL,
    actor VARCHAR(64) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    FOREIGN KEY (order_id) REFERENCES orders (id)
);

CREATE UNIQUE INDEX uq_shipment_order ON shipment (order_id);
