-- A pending order's hold can be extended (POST /orders/{id}/hold): the change raises `order.hold_extended`.
ALTER TABLE events DROP CONSTRAINT events_type_known;
ALTER TABLE events ADD CONSTRAINT events_type_known CHECK (type IN (
    'order.placed', 'order.cancelled', 'order.expired', 'order.fulfilled', 'order.hold_extended',
    'stock.adjusted', 'stock.low', 'product.created', 'product.updated', 'product.deleted'));
