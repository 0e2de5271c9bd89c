-- Returns: shipped units of an order come back, each line either restocked (on hand up, ledger
-- `return_restock`) or not (the ledger records `return_discarded`, stock unchanged). A line counts what came
-- back, never more than shipped.
ALTER TABLE order_lines ADD COLUMN returned bigint NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_returned_within_fulfilled
    CHECK (returned >= 0 AND returned <= fulfilled);

CREATE TABLE returns (
    id         uuid        PRIMARY KEY,
    order_id   uuid        NOT NULL REFERENCES orders (id),
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT returns_reason_known CHECK (reason IN ('unwanted', 'defective', 'wrong_item', 'not_as_described', 'other'))
);

CREATE INDEX returns_order_id_idx ON returns (order_id, id);

-- What one return took back of one line of its order, and whether it went back on the shelf.
CREATE TABLE return_lines (
    return_id uuid    NOT NULL REFERENCES returns (id),
    order_id  uuid    NOT NULL,
    line_no   int     NOT NULL,
    quantity  bigint  NOT NULL,
    restock   boolean NOT NULL,
    PRIMARY KEY (return_id, line_no),
    FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no),
    CONSTRAINT return_lines_quantity_positive CHECK (quantity > 0)
);

CREATE INDEX return_lines_order_line_idx ON return_lines (order_id, line_no);

-- A return that is not restocked changes no stock, yet the ledger records it: the one reason a row may move
-- nothing.
ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_reason_known;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_reason_known CHECK (reason IN (
    'order_reserved', 'order_released', 'order_expired', 'order_fulfilled', 'return_discarded',
    'received', 'correction', 'damaged', 'shrinkage', 'cycle_count', 'return_restock'));
ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_changes_something;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_changes_something
    CHECK (on_hand_delta <> 0 OR reserved_delta <> 0 OR reason = 'return_discarded');

ALTER TABLE events DROP CONSTRAINT events_type_known;
ALTER TABLE events ADD CONSTRAINT events_type_known CHECK (type IN (
    'order.placed', 'order.cancelled', 'order.expired', 'order.fulfilled', 'order.partially_fulfilled',
    'order.returned', 'order.hold_extended', 'stock.adjusted', 'stock.low', 'product.created', 'product.updated',
    'product.deleted'));
