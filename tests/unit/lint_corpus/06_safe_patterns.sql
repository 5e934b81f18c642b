-- The safe forms: nothing here should stop a strict run.
CREATE TABLE IF NOT EXISTS retention_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL,
    keep_days integer NOT NULL DEFAULT 90 CHECK (keep_days > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_retention_jobs_table ON retention_jobs (table_name);
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_hash text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS consent_version integer DEFAULT 1;
ALTER TABLE users ADD CONSTRAINT chk_users_consent CHECK (consent_version > 0) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT chk_users_consent;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email_hash ON users (email_hash);
UPDATE users SET email_hash = md5(email) WHERE email_hash IS NULL AND id < 10000;
DELETE FROM system_metrics WHERE recorded_at < now() - interval '90 days';
DROP INDEX CONCURRENTLY IF EXISTS idx_users_email_hash_old;
COMMENT ON COLUMN users.email_hash IS 'hex md5 of the lower-cased e-mail (GDPR pseudonymisation)';
