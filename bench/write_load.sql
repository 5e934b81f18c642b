-- pgbench write load of the analytics application: a page view, its session's activity, a metric.
\set sid random(1, 500000)
INSERT INTO page_views (session_id, path, timestamp, duration_ms, status_code)
VALUES (:sid, '/page/' || (:sid % 200), now(), 120, 200);
UPDATE visitor_sessions SET last_activity_at = now(), page_view_count = page_view_count + 1
WHERE id = :sid;
INSERT INTO system_metrics (metric_name, value) VALUES ('http_requests', 1);
