-- One row per background job. An instance runs a job only after taking its lease (insert the
-- row, or a compare-and-set UPDATE once the lease has expired or is its own), so N instances
-- on one database run each job once per interval. The last run is shown to admins.
CREATE TABLE job_lease (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    holder VARCHAR(64) NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_run_at TIMESTAMP NULL,
    last_outcome VARCHAR(255) NULL,
    runs BIGINT NOT NULL DEFAULT 0
);
