-- The transaction of an order (PgStore's, for 3 random products of the 100 the benchmarks seed, ids from
-- bench_id(n)), as a pgbench script: the reference that `cargo bench -p inventory --bench orders` and
-- `scripts/bench-invoke` run the service against. Its `order.placed` event is written by the order's own
-- statement, as `write_events` does, with data the size of a 3-line order's JSON.
\set a random(1, 100)
\set b random(1, 100)
\set c random(1, 100)
BEGIN;
SELECT p.*, now() FROM products p
 WHERE id IN (bench_id(:a), bench_id(:b), bench_id(:c)) ORDER BY id FOR UPDATE;
WITH line AS (
  SELECT id AS product_id, 1::bigint AS quantity, sku, name, price_minor AS unit_price_minor,
         price_minor AS line_total_minor, row_number() OVER (ORDER BY id) AS line_no
  FROM products WHERE id IN (bench_id(:a), bench_id(:b), bench_id(:c))
), new_id AS (SELECT uuid_v7() AS id),
reservation AS (
  UPDATE products p SET reserved = p.reserved + line.quantity, version = p.version + 1, updated_at = now()
  FROM line WHERE p.id = line.product_id AND p.on_hand - p.reserved - p.damaged - p.safety_stock + p.backorder_limit >= line.quantity
  RETURNING p.id, p.on_hand, p.reserved, p.damaged, p.version, line.quantity
), new_order AS (
  INSERT INTO orders (id, status, customer_ref, currency, total_minor, created_at, updated_at, expires_at)
  SELECT id, 'pending', NULL, 'EUR', 300, now(), now(), now() + make_interval(secs => 1800) FROM new_id
  RETURNING id
), new_lines AS (
  INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor, line_total_minor)
  SELECT (SELECT id FROM new_id), line_no::int, product_id, sku, name, quantity, unit_price_minor, line_total_minor
  FROM line
), movements AS (
  INSERT INTO stock_movements (product_id, order_id, reason, on_hand_delta, reserved_delta, on_hand_after, reserved_after, damaged_after)
  SELECT id, (SELECT id FROM new_id), 'order_reserved', 0, quantity, on_hand, reserved, damaged FROM reservation
), written AS (
  SELECT write_events(ARRAY[uuid_v7()], ARRAY[(SELECT id FROM new_id)], ARRAY['order.placed'],
                      ARRAY[jsonb_build_object('pad', repeat('x', 900))::text]) AS events
)
SELECT r.id, r.reserved, r.version, w.events FROM new_order o CROSS JOIN written w LEFT JOIN reservation r ON true;
COMMIT;
