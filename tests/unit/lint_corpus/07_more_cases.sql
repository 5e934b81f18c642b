-- Más casos / more cases: primary keys, foreign key columns, partitions, suppressions (日本語).
ALTER TABLE system_metrics ADD PRIMARY KEY (id);
ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX idx_users_id;
ALTER TABLE page_views ADD COLUMN IF NOT EXISTS campaign_id bigint REFERENCES campaigns (id);
ALTER TABLE page_views ADD COLUMN IF NOT EXISTS path_lower text GENERATED ALWAYS AS (lower(path)) STORED;
ALTER TABLE page_views ADD COLUMN IF NOT EXISTS event_seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE page_views ADD COLUMN IF NOT EXISTS score bigint DEFAULT compute_score(path);
ALTER TABLE page_views ADD COLUMN IF NOT EXISTS kind text CHECK (kind IN ('view', 'click'));
ALTER TABLE page_views DETACH PARTITION page_views_2019;
ALTER TABLE page_views DETACH PARTITION page_views_2020 CONCURRENTLY;
/* café ☕ naïve */ DROP TABLE IF EXISTS "tmp_ñandú";
-- dbmigrate:ignore DM201 reason: exports is empty until the backfill in 008
CREATE INDEX IF NOT EXISTS idx_exports_created ON exports (created_at);
-- dbmigrate:ignore DM105, DM106 reason: staging table, refilled by every import
DELETE FROM import_staging;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_page_views_future
    ON page_views (id) WHERE "timestamp" > 'now'::timestamptz;
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
ALTER TYPE device_kind ADD VALUE IF NOT EXISTS 'tv';
BEGIN;
ALTER TABLE users ADD COLUMN IF NOT EXISTS plan text;
