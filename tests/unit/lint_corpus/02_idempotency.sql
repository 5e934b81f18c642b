-- Statements that fail when a half-applied migration is run again.
CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS audit_log_archive (
    id bigint PRIMARY KEY,
    action text NOT NULL
);
CREATE SCHEMA reporting;
CREATE SCHEMA IF NOT EXISTS reporting_v2;
CREATE SEQUENCE invoice_numbers;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX CONCURRENTLY idx_users_created_at ON users (created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_last_login ON users (last_login);
DROP INDEX CONCURRENTLY idx_users_fax;
DROP INDEX CONCURRENTLY IF EXISTS idx_users_pager;
ALTER TABLE users ADD COLUMN last_login timestamptz;
ALTER TABLE users ADD COLUMN IF NOT EXISTS last_seen timestamptz;
DROP SEQUENCE old_invoice_numbers;
DROP VIEW IF EXISTS daily_summary_v1;
CREATE OR REPLACE VIEW daily_summary AS
    SELECT date_trunc('day', "timestamp") AS day, count(*) AS views FROM page_views GROUP BY 1;
