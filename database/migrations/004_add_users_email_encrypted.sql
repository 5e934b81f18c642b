-- 004: envelope-encrypted copy of users.email. The application encrypts with a data key and
-- records which key version it used, so keys can be rotated row by row. Look-ups use email_hash
-- (003), never the ciphertext, so no index is needed here.
--
-- Both columns are nullable without a default: catalog-only changes, one short transaction.

ALTER TABLE users ADD COLUMN IF NOT EXISTS email_encrypted bytea;
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_key_version integer;

COMMENT ON COLUMN users.email_encrypted IS 'email encrypted by the application (AES-256-GCM)';
COMMENT ON COLUMN users.email_key_version IS 'version of the data key that encrypted email_encrypted';
