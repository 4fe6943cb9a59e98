-- A session remembers the version it was issued at; a password change or a removal bumps it.
ALTER TABLE users ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0;

-- Failed logins are counted by the name typed, whether or not such a user exists, so the
-- growing delay cannot tell which names exist. name_key is the SHA-256 of the name, in hex.
CREATE TABLE login_throttle (
    name_key VARCHAR(64) NOT NULL PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until TIMESTAMP NULL,
    updated_at TIMESTAMP NOT NULL
);

ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN failed_logins;
