-- 002: case-insensitive look-up of users by e-mail (login, invitations).
--
-- users.email is already UNIQUE (001); this index serves `WHERE lower(email) = lower($1)`. It is
-- deliberately not UNIQUE: a unique index on lower(email) would fail on existing rows that differ
-- only in case, and would need a duplicate check first. Built CONCURRENTLY because users exists,
-- so writes continue during the build; the file therefore runs outside a transaction.

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email_lower ON users (lower(email));
