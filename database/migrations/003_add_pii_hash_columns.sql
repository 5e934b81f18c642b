-- 003: GDPR pseudonymisation. The application stores keyed hashes (HMAC-SHA-256 with a key kept
-- outside the database) of personal data next to it, so analytics can join and count on the hash
-- and the clear values can later be erased without losing the joins.
--
-- ADD COLUMN without a default is a catalog-only change (no table rewrite); it still takes a short
-- ACCESS EXCLUSIVE lock, which dbmigrate bounds with lock_timeout and retries. The index is built
-- CONCURRENTLY on the existing users table.

ALTER TABLE users ADD COLUMN IF NOT EXISTS email_hash bytea;
ALTER TABLE visitor_sessions ADD COLUMN IF NOT EXISTS ip_hash bytea;
ALTER TABLE visitor_sessions ADD COLUMN IF NOT EXISTS user_agent_hash bytea;

COMMENT ON COLUMN users.email_hash IS 'HMAC-SHA-256 of lower(email); key held by the application';
COMMENT ON COLUMN visitor_sessions.ip_hash IS 'HMAC-SHA-256 of ip_address; key held by the application';
COMMENT ON COLUMN visitor_sessions.user_agent_hash IS 'HMAC-SHA-256 of user_agent';

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email_hash ON users (email_hash);
