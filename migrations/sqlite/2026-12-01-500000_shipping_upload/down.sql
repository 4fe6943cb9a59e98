DROP TABLE api_token;
ALTER TABLE shipment DROP COLUMN upload_error;
ALTER TABLE shipment DROP COLUMN upload_next_at;
ALTER TABLE shipment DROP COLUMN upload_tries;
ALTER TABLE shipment DROP COLUMN upload_status;
