-- Statements that hold strong locks on existing tables for a long time.
CREATE INDEX IF NOT EXISTS idx_page_views_path ON page_views (path);
CREATE TABLE IF NOT EXISTS campaigns (id bigint PRIMARY KEY, name text NOT NULL);
CREATE INDEX IF NOT EXISTS idx_campaigns_name ON campaigns (name);
ALTER TABLE page_views ADD CONSTRAINT fk_page_views_user
    FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE page_views ADD CONSTRAINT fk_page_views_session
    FOREIGN KEY (session_id) REFERENCES visitor_sessions (id) NOT VALID;
ALTER TABLE page_views VALIDATE CONSTRAINT fk_page_views_session;
ALTER TABLE users ADD CONSTRAINT chk_users_email CHECK (email LIKE '%@%');
ALTER TABLE users ADD CONSTRAINT chk_users_email_len CHECK (length(email) < 320) NOT VALID;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
ALTER TABLE page_views ALTER COLUMN duration_ms TYPE bigint;
ALTER TABLE users ADD COLUMN IF NOT EXISTS api_key uuid DEFAULT gen_random_uuid();
ALTER TABLE users ADD COLUMN IF NOT EXISTS sample_bucket double precision DEFAULT random();
ALTER TABLE users ADD COLUMN IF NOT EXISTS imported_at timestamptz DEFAULT clock_timestamp();
ALTER TABLE users ADD COLUMN IF NOT EXISTS registered_at timestamptz DEFAULT now();
ALTER TABLE users ADD COLUMN IF NOT EXISTS login_count integer NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN IF NOT EXISTS country text NOT NULL;
ALTER TABLE users ADD CONSTRAINT uq_users_email UNIQUE (email);
ALTER TABLE campaigns ADD CONSTRAINT uq_campaigns_name UNIQUE (name);
VACUUM FULL page_views;
CLUSTER page_views USING idx_page_views_path;
REINDEX TABLE page_views;
REINDEX INDEX CONCURRENTLY idx_page_views_path;
DROP INDEX IF EXISTS idx_page_views_referrer;
