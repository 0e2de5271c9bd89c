-- How many idempotency keys each caller holds, so that one caller's stored responses are bounded: a write whose
-- key would take its caller past the limit is refused (429 `too_many_keys`) and rolls back.
--
-- A key is counted by the statement that stores its response (the transaction's last before COMMIT), so the
-- caller's row is locked for one round trip, not for the whole write; a key taken over once expired is counted
-- already. A no-op write's key is deleted before COMMIT (and uncounted if it was a taken-over one); the purge
-- uncounts what it deletes. Every count therefore equals the caller's committed keys.
CREATE TABLE idempotency_key_counts (
    caller text    PRIMARY KEY,
    keys   integer NOT NULL CHECK (keys >= 0)
);

-- The keys stored before this migration, counted once. A function still running the previous release while
-- this runs stores keys without counting them: their caller's count is then low until the purge deletes them
-- (never below zero), which loosens that caller's limit for a day and nothing else.
INSERT INTO idempotency_key_counts (caller, keys)
SELECT caller, count(*) FROM idempotency_keys GROUP BY caller;

COMMENT ON COLUMN idempotency_keys.caller IS
    'who sent the key: the hex SHA-256 of the token''s issuer and subject (empty without authentication)';
