-- The order path under failure (issue 12).

-- What a cancel/replace asked for, recorded with its idempotency key: a key reused with other values is
-- refused (ALREADY_EXISTS) instead of silently answering with the first outcome.
ALTER TABLE request_keys ADD COLUMN fingerprint text NOT NULL DEFAULT '';

-- The durable send path: orders the venue has not acknowledged yet (no venue_order_id) and cancels not yet
-- confirmed are found from the database, not from memory, so a commit whose outcome was unknown or a crash
-- between commit and send still reaches the venue.
CREATE INDEX orders_to_venue ON orders (venue, updated_time_ns)
    WHERE (status = 'ACCEPTED' AND venue_order_id = '') OR status = 'PENDING_CANCEL';
