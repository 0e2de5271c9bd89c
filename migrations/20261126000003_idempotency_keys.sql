-- Idempotency keys: the first successful response of a write sent with an `Idempotency-Key`, stored in the
-- same transaction as the write itself, so that a retry (after a lost answer, a timeout, an unknown outcome)
-- replays the response instead of writing a second time.
--
-- A request claims its key with the first statement of its transaction (an INSERT): a concurrent request with
-- the same key waits on that row's unique index entry until the first commits (and then replays it) or rolls
-- back (and then claims the key itself). The response columns are filled by the last statement before COMMIT,
-- so a committed row always has them; a failed request leaves no row, and its key stays free.
CREATE TABLE idempotency_keys (
    -- Who sent the key (the token's client or subject; empty without authentication): the same key from two
    -- callers is two requests, and one caller can neither replay nor block another's.
    caller      text        NOT NULL,
    key         text        NOT NULL,
    -- SHA-256 of the request: method, route, path id and the body, canonicalised.
    fingerprint bytea       NOT NULL,
    status      smallint,
    -- The response's own headers worth replaying (Location, ETag), as [name, value, name, value, ...].
    headers     text[],
    body        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key),
    CONSTRAINT idempotency_keys_key_format CHECK (key ~ '^[!-~]{1,255}$'),
    CONSTRAINT idempotency_keys_fingerprint_size CHECK (octet_length(fingerprint) = 32)
);

-- The purge walks the oldest keys first, in bounded batches.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
