ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until DATETIME(6) NULL;
DROP TABLE login_throttle;
ALTER TABLE users DROP COLUMN session_version;
