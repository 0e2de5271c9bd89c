-- Partial fulfilment: an order is shipped in one or more fulfilments, each of some units of some of its lines.
-- A line counts what has shipped (never more than was ordered); the order is `partially_fulfilled` until every
-- unit has, and a cancel or expiry then releases only what is left.
ALTER TABLE order_lines ADD COLUMN fulfilled bigint NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_fulfilled_within_quantity
    CHECK (fulfilled >= 0 AND fulfilled <= quantity);

ALTER TABLE orders DROP CONSTRAINT orders_status_known;
ALTER TABLE orders ADD CONSTRAINT orders_status_known
    CHECK (status IN ('pending', 'partially_fulfilled', 'fulfilled', 'cancelled'));

-- The expiry job walks every order that still holds stock, in the order its hold ends.
DROP INDEX orders_pending_expires_at_idx;
CREATE INDEX orders_holding_expires_at_idx ON orders (expires_at) WHERE status IN ('pending', 'partially_fulfilled');

CREATE TABLE fulfilments (
    id         uuid        PRIMARY KEY,
    order_id   uuid        NOT NULL REFERENCES orders (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX fulfilments_order_id_idx ON fulfilments (order_id, id);

-- What one fulfilment shipped of one line of its order.
CREATE TABLE fulfilment_lines (
    fulfilment_id uuid   NOT NULL REFERENCES fulfilments (id),
    order_id      uuid   NOT NULL,
    line_no       int    NOT NULL,
    quantity      bigint NOT NULL,
    PRIMARY KEY (fulfilment_id, line_no),
    FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no),
    CONSTRAINT fulfilment_lines_quantity_positive CHECK (quantity > 0)
);

CREATE INDEX fulfilment_lines_order_line_idx ON fulfilment_lines (order_id, line_no);

-- Orders fulfilled before fulfilments were kept shipped everything at once: one fulfilment each, at the time
-- the order last changed.
UPDATE order_lines l SET fulfilled = l.quantity FROM orders o WHERE o.id = l.order_id AND o.status = 'fulfilled';
INSERT INTO fulfilments (id, order_id, created_at)
    SELECT uuid_v7(), id, updated_at FROM orders WHERE status = 'fulfilled';
INSERT INTO fulfilment_lines (fulfilment_id, order_id, line_no, quantity)
    SELECT f.id, l.order_id, l.line_no, l.quantity FROM fulfilments f JOIN order_lines l ON l.order_id = f.order_id;

-- A fulfilment that leaves units to ship raises `order.partially_fulfilled`.
ALTER TABLE events DROP CONSTRAINT events_type_known;
ALTER TABLE events ADD CONSTRAINT events_type_known CHECK (type IN (
    'order.placed', 'order.cancelled', 'order.expired', 'order.fulfilled', 'order.partially_fulfilled',
    'order.hold_extended', 'stock.adjusted', 'stock.low', 'product.created', 'product.updated', 'product.deleted'));
