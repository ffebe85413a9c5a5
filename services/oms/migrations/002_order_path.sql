-- The order path under failure (issue 12).

-- What a cancel/replace asked for, recorded with its idempotency key: a key reused with other values is
-- refused (ALREADY_EXISTS) instead of silently answering with the first outcome.
ALTER TABLE request_keys ADD COLUMN fingerprint text NOT NULL DEFAULT '';
