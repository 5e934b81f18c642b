-- Destructive statements: each of these loses data or breaks running clients.
DROP TABLE legacy_events;
DROP TABLE IF EXISTS old_sessions CASCADE;
ALTER TABLE users DROP COLUMN IF EXISTS middle_name;
ALTER TABLE users DROP COLUMN fax_number;
DROP SCHEMA IF EXISTS staging CASCADE;
TRUNCATE page_views;
TRUNCATE TABLE system_metrics CASCADE;
DELETE FROM page_views;
DELETE FROM page_views WHERE "timestamp" < '2020-01-01';
UPDATE users SET email = lower(email);
UPDATE users SET email = lower(email) WHERE email <> lower(email);
DROP DATABASE IF EXISTS analytics_old;
ALTER TABLE users RENAME COLUMN name TO full_name;
ALTER TABLE visitor_sessions RENAME TO sessions;
