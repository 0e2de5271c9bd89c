-- Inventory and orders.
--
-- The invariants that keep stock from being oversold live here, in the database, so that no code path
-- (and no race between two code paths) can break them:
--   * 0 <= reserved <= on_hand on every product, as CHECK constraints. Reservations are taken with
--     conditional UPDATEs; a reservation that would break the rule fails inside the transaction.
--   * the ledger (stock_movements) is insert-only: a trigger refuses UPDATE and DELETE.
-- Quantities and money are bigint: money is always an integer number of minor units, never a float.

-- UUID version 7 (RFC 9562): a millisecond timestamp followed by random bits, so ids sort by creation time
-- and keyset pagination of the ledger walks it newest first. PostgreSQL 15 has no built-in generator: take a
-- random v4 UUID, overwrite its first 48 bits with the Unix time in milliseconds and set the version to 7.
CREATE FUNCTION uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

CREATE TABLE products (
    id                  uuid        PRIMARY KEY,
    sku                 text        NOT NULL,
    name                text        NOT NULL,
    description         text,
    price_minor         bigint      NOT NULL,
    currency            text        NOT NULL,
    on_hand             bigint      NOT NULL,
    reserved            bigint      NOT NULL DEFAULT 0,
    low_stock_threshold bigint,
    -- Bumped on every change of the row (catalogue fields and stock alike): it is the product's ETag.
    version             bigint      NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- Named so the Postgres adapter can map a violation to `sku_taken`.
    CONSTRAINT products_sku_key UNIQUE (sku),
    CONSTRAINT products_price_not_negative CHECK (price_minor >= 0),
    CONSTRAINT products_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    -- Named so the adapter can map a violation (e.g. a stock adjustment below what is reserved) to `conflict`.
    CONSTRAINT products_on_hand_not_negative CHECK (on_hand >= 0),
    CONSTRAINT products_reserved_within_on_hand CHECK (reserved >= 0 AND reserved <= on_hand),
    CONSTRAINT products_low_stock_threshold_not_negative CHECK (low_stock_threshold >= 0)
);

-- Partial index for `GET /products?low_stock=true`: only products with a threshold can be low.
CREATE INDEX products_low_stock_idx ON products (id) WHERE low_stock_threshold IS NOT NULL;

CREATE TABLE orders (
    id           uuid        PRIMARY KEY,
    status       text        NOT NULL,
    customer_ref text,
    currency     text        NOT NULL,
    total_minor  bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_status_known CHECK (status IN ('pending', 'fulfilled', 'cancelled')),
    CONSTRAINT orders_total_not_negative CHECK (total_minor >= 0)
);

-- `GET /orders?status=...` walks one status newest first.
CREATE INDEX orders_status_id_idx ON orders (status, id);

-- Lines are a snapshot of the product at ordering time. There is deliberately no foreign key to products:
-- deleting a product from the catalogue must not touch past orders.
CREATE TABLE order_lines (
    order_id         uuid   NOT NULL REFERENCES orders (id),
    line_no          int    NOT NULL,
    product_id       uuid   NOT NULL,
    sku              text   NOT NULL,
    name             text   NOT NULL,
    quantity         bigint NOT NULL,
    unit_price_minor bigint NOT NULL,
    line_total_minor bigint NOT NULL,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_lines_quantity_positive CHECK (quantity > 0),
    CONSTRAINT order_lines_one_line_per_product UNIQUE (order_id, product_id)
);

-- The stock ledger: one row per change of on_hand or reserved, written in the same transaction as the change.
-- Like order lines it outlives the product it describes, so there is no foreign key.
CREATE TABLE stock_movements (
    id             uuid        PRIMARY KEY DEFAULT uuid_v7(),
    product_id     uuid        NOT NULL,
    order_id       uuid,
    reason         text        NOT NULL,
    on_hand_delta  bigint      NOT NULL,
    reserved_delta bigint      NOT NULL,
    on_hand_after  bigint      NOT NULL,
    reserved_after bigint      NOT NULL,
    note           text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_movements_reason_known CHECK (reason IN (
        'order_reserved', 'order_released', 'order_fulfilled',
        'received', 'correction', 'damaged', 'shrinkage', 'cycle_count', 'return_restock')),
    CONSTRAINT stock_movements_changes_something CHECK (on_hand_delta <> 0 OR reserved_delta <> 0)
);

-- `GET /products/{id}/stock-movements` reads one product's ledger newest first.
CREATE INDEX stock_movements_product_id_idx ON stock_movements (product_id, id DESC);

CREATE FUNCTION stock_movements_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stock_movements is insert-only';
END;
$$;

CREATE TRIGGER stock_movements_insert_only
    BEFORE UPDATE OR DELETE ON stock_movements
    FOR EACH STATEMENT EXECUTE FUNCTION stock_movements_insert_only();
