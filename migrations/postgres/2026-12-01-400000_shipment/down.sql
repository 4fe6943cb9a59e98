DROP TABLE shipment;
