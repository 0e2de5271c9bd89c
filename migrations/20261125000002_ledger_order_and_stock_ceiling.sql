-- Two refinements of the first migration.
--
-- 1. The ledger's own order. uuid_v7() ids sort by millisecond only: two movements of one product within a
--    millisecond (a reservation and an adjustment, say) could list in either order, and their
--    on_hand_after/reserved_after would then read out of sequence. Every movement of a product is written
--    while that product's row is locked, so a sequence taken at insert time orders each product's ledger
--    exactly as the changes happened. Lists walk it newest first; ids stay the public handle (and cursor).
ALTER TABLE stock_movements ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_seq_key UNIQUE (seq);
DROP INDEX stock_movements_product_id_idx;
CREATE INDEX stock_movements_product_seq_idx ON stock_movements (product_id, seq DESC);

-- 2. A ceiling on stock, the largest level the API accepts (10^12 units), so that repeated adjustments can
--    never reach bigint overflow; named so the adapter can report it as a conflict.
ALTER TABLE products ADD CONSTRAINT products_on_hand_within_ceiling CHECK (on_hand <= 1000000000000);
