-- Holds that expire, and the event outbox.
--
-- 1. Expiring holds. A pending order holds its stock until `expires_at`; the expire-orders job then cancels it
--    with the reason `expired` and releases its stock through the ledger (reason `order_expired`). Pending
--    orders placed before this migration get a full day from now before their hold ends, rather than expiring
--    at the first run of the job.
ALTER TABLE orders ADD COLUMN expires_at timestamptz;
UPDATE orders SET expires_at = CASE WHEN status = 'pending' THEN now() + interval '24 hours' ELSE created_at END;
ALTER TABLE orders ALTER COLUMN expires_at SET NOT NULL;
-- Why a cancelled order was cancelled: `requested` (POST /orders/{id}/cancel) or `expired` (its hold ended).
ALTER TABLE orders ADD COLUMN cancel_reason text;
UPDATE orders SET cancel_reason = 'requested' WHERE status = 'cancelled';
ALTER TABLE orders ADD CONSTRAINT orders_cancel_reason_known CHECK (
    (status = 'cancelled') = (cancel_reason IS NOT NULL) AND cancel_reason IN ('requested', 'expired'));
-- The job walks the pending orders whose hold has ended, oldest hold first.
CREATE INDEX orders_pending_expires_at_idx ON orders (expires_at) WHERE status = 'pending';

ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_reason_known;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_reason_known CHECK (reason IN (
    'order_reserved', 'order_released', 'order_expired', 'order_fulfilled',
    'received', 'correction', 'damaged', 'shrinkage', 'cycle_count', 'return_restock'));

-- 2. The transactional outbox: every change writes its events in its own transaction, as its last statement.
--
-- The feed's order is (commit_xid, seq), and a reader only sees events whose commit_xid is below the oldest
-- transaction still running (pg_snapshot_xmin of its snapshot). Every running transaction writes its events with
-- a commit_xid at least its own transaction id, which is at least that horizon; so once a reader has been given
-- an event, no event can commit later with a smaller position: a reader that follows the cursor misses nothing,
-- whatever order transactions commit in.
--
-- commit_xid is the greatest of the writing transaction's own id and the commit_xid of the last event of every
-- resource it writes about (kept in event_resources, read and written under the lock the transaction holds on
-- that resource). Two changes of one resource are serialized by that lock, so the later one's position is
-- always greater: events of one resource are listed in the order their changes committed, even when the later
-- transaction started (and got its id) first. seq, taken when the events are written, under those locks,
-- orders events with the same commit_xid.
CREATE TABLE events (
    id          uuid        PRIMARY KEY,
    commit_xid  xid8        NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    type        text        NOT NULL,
    resource_id uuid        NOT NULL,
    -- The resource as the change left it, the same JSON as the API's view of it.
    data        jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_position_key UNIQUE (commit_xid, seq),
    CONSTRAINT events_type_known CHECK (type IN (
        'order.placed', 'order.cancelled', 'order.expired', 'order.fulfilled', 'stock.adjusted', 'stock.low',
        'product.created', 'product.updated', 'product.deleted'))
);

-- Retention walks the oldest events first.
CREATE INDEX events_created_at_idx ON events (created_at);

-- The position of the last event of each resource (see above).
CREATE TABLE event_resources (
    resource_id uuid PRIMARY KEY,
    commit_xid  xid8 NOT NULL
);

-- How far the publisher has delivered the feed (one row): it sends the events after this position in order,
-- and moves the position on only once the bus has accepted them.
CREATE TABLE event_deliveries (
    one          boolean     PRIMARY KEY DEFAULT true CHECK (one),
    after_xid    xid8        NOT NULL DEFAULT '0',
    after_seq    bigint      NOT NULL DEFAULT 0,
    delivered_at timestamptz
);
INSERT INTO event_deliveries DEFAULT VALUES;
