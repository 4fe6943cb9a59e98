-- The parcel an admin sent for an order: carrier and tracking number. One per order (UNIQUE):
-- a second 发货 of the same order, even from another instance at the same moment, is refused
-- by the index rather than recorded twice.
CREATE TABLE shipment (
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id INTEGER NOT NULL,
    carrier VARCHAR(32) NOT NULL,
    tracking_no VARCHAR(64) NOT NULL,
    actor VARCHAR(64) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE UNIQUE INDEX uq_shipment_order ON shipment (order_id);
