-- Selling ahead of stock, and stock kept back. A product takes orders beyond what it has up to its
-- `backorder_limit` (0, the default: never, as before), and keeps `safety_stock` units on hand that no order
-- takes. Available is on_hand - reserved - safety_stock: it may go as low as -backorder_limit (what the
-- backorders owe), never lower, whatever writes it. Reserved may now exceed on hand (by the backorders); on hand
-- itself never goes below zero, so a backordered unit ships only once stock has arrived.
ALTER TABLE products ADD COLUMN backorder_limit bigint NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN safety_stock bigint NOT NULL DEFAULT 0;
ALTER TABLE products ADD CONSTRAINT products_backorder_limit_range
    CHECK (backorder_limit >= 0 AND backorder_limit <= 1000000000000);
ALTER TABLE products ADD CONSTRAINT products_safety_stock_range
    CHECK (safety_stock >= 0 AND safety_stock <= 1000000000000);
ALTER TABLE products DROP CONSTRAINT products_reserved_within_on_hand;
ALTER TABLE products ADD CONSTRAINT products_reserved_not_negative CHECK (reserved >= 0);
ALTER TABLE products ADD CONSTRAINT products_available_within_backorder_limit
    CHECK (on_hand - reserved - safety_stock >= -backorder_limit);
