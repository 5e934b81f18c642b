-- 005: performance indexes for the analytics queries and the retention clean-up job.
--
-- All tables exist already, so every index is built CONCURRENTLY (writes continue during the
-- build) and the file runs outside a transaction, one statement at a time. dbmigrate drops an
-- INVALID index left by an interrupted build before rebuilding it, because
-- CREATE INDEX CONCURRENTLY IF NOT EXISTS would otherwise skip the broken index silently.

-- Recent views of a page: WHERE path = $1 ORDER BY timestamp DESC LIMIT 100, and the dashboard's
-- time-range scans. Its leading column also serves the retention job's
-- DELETE FROM page_views WHERE timestamp < now() - keep_days, so no separate index is needed.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_page_views_timestamp_desc_path
    ON page_views (timestamp DESC, path);

-- A session's page views in order (session replay, funnels); also covers the foreign key's
-- ON DELETE CASCADE from visitor_sessions, which the retention job triggers.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_page_views_session_timestamp_desc
    ON page_views (session_id, timestamp DESC);

-- Active sessions (activity in the last 24 hours). An index predicate may only use IMMUTABLE
-- functions, so `WHERE last_activity_at > now() - interval '24 hours'` is refused by PostgreSQL,
-- and a constant cut-off date would go stale. Instead the predicate keeps only sessions that are
-- still open (ended_at IS NULL; the application closes a session after 30 minutes without
-- activity), and the 24-hour window is a range condition on the indexed column:
--   WHERE ended_at IS NULL AND last_activity_at > now() - interval '24 hours'
-- The index stays small (open sessions only) and never needs rebuilding as time passes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_visitor_sessions_active_last_activity
    ON visitor_sessions (last_activity_at DESC)
    WHERE ended_at IS NULL;

-- Retention clean-up: DELETE FROM visitor_sessions WHERE last_activity_at < cutoff, and
-- DELETE FROM system_metrics WHERE recorded_at < cutoff.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_visitor_sessions_last_activity_at
    ON visitor_sessions (last_activity_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_system_metrics_recorded_at
    ON system_metrics (recorded_at);
