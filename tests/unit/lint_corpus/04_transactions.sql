-- CONCURRENTLY cannot run inside a transaction block; PostgreSQL refuses it at run time.
BEGIN;
ALTER TABLE users ADD COLUMN IF NOT EXISTS timezone text;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_timezone ON users (timezone);
COMMIT;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_locale ON users (locale);
