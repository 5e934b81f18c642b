-- Index predicates must be immutable; unique indexes need a duplicate check first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_sessions_recent
    ON visitor_sessions (last_activity) WHERE last_activity > now() - interval '24 hours';
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_sessions_today
    ON visitor_sessions (started_at) WHERE started_at >= current_date;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_sessions_sample
    ON visitor_sessions (id) WHERE random() < 0.01;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_sessions_active
    ON visitor_sessions (last_activity DESC) WHERE is_active;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email_unique ON users (lower(email));
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_users_external_id
    ON users (tenant_id, external_id) WHERE deleted_at IS NULL;
CREATE TABLE IF NOT EXISTS referrers (id bigint PRIMARY KEY, host text NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS idx_referrers_host ON referrers (host);
