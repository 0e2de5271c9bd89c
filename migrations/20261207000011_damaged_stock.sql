-- Damaged stock: units on hand that cannot be sold. They move between sellable and damaged through the ledger
-- (`marked_damaged`: +n marks n units damaged, -n makes n sellable again), a `damaged` write-off disposes of
-- damaged units first, and available stock no longer counts them: available is
-- on_hand - reserved - damaged - safety_stock, never below -backorder_limit. The ledger records each row's
-- change of damaged units and the count after it, as it does for on hand and reserved.
ALTER TABLE products ADD COLUMN damaged bigint NOT NULL DEFAULT 0;
ALTER TABLE products ADD CONSTRAINT products_damaged_within_on_hand CHECK (damaged >= 0 AND damaged <= on_hand);
ALTER TABLE products DROP CONSTRAINT products_available_within_backorder_limit;
ALTER TABLE products ADD CONSTRAINT products_available_within_backorder_limit
    CHECK (on_hand - reserved - damaged - safety_stock >= -backorder_limit);

ALTER TABLE stock_movements ADD COLUMN damaged_delta bigint NOT NULL DEFAULT 0;
ALTER TABLE stock_movements ADD COLUMN damaged_after bigint NOT NULL DEFAULT 0;
ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_reason_known;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_reason_known CHECK (reason IN (
    'order_reserved', 'order_released', 'order_expired', 'order_fulfilled', 'return_discarded',
    'received', 'correction', 'damaged', 'shrinkage', 'cycle_count', 'return_restock', 'marked_damaged'));
ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_changes_something;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_changes_something
    CHECK (on_hand_delta <> 0 OR reserved_delta <> 0 OR damaged_delta <> 0 OR reason = 'return_discarded');
