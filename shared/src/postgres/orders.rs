use std::collections::HashMap;

use time::OffsetDateTime;

use crate::domain::order::{
    CancelReason, Fulfilment, FulfilmentLine, NewFulfilment, NewOrder, NewReturn, Order,
    OrderAction, OrderLine, OrderStatus, ProductSnapshot, Return, ReturnLine, ReturnReason,
    Shipment, Transition, extend_hold, plan_fulfilment, plan_order, plan_return, restock_refused,
};
use crate::domain::product::Product;
use crate::domain::{
    Deadline, Error, FulfilmentId, Id, MAX_PAGE_LINES, OrderId, Page, PageRequest, ProductId,
    ReturnId, new_id,
};
use crate::events;
use crate::ports::{OrderStore, Written};

use super::events::EventColumns;
use super::products::product_in;
use super::{PgStore, Tx, db_error, page_beside};

/// One line of an order joined with its order's header, as the order queries return them.
struct OrderLineRow {
    id: OrderId,
    status: String,
    customer_ref: Option<String>,
    currency: String,
    total_minor: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    cancel_reason: Option<String>,
    product_id: ProductId,
    sku: String,
    name: String,
    quantity: i64,
    unit_price_minor: i64,
    line_total_minor: i64,
    fulfilled: i64,
    returned: i64,
}

/// Folds rows (ordered by order, then line) into orders, keeping the row order.
fn group_orders(rows: Vec<OrderLineRow>) -> Result<Vec<Order>, Error> {
    let mut orders: Vec<Order> = Vec::new();
    for row in rows {
        let line = OrderLine {
            product_id: row.product_id,
            sku: row.sku,
            name: row.name,
            quantity: row.quantity,
            unit_price_minor: row.unit_price_minor,
            line_total_minor: row.line_total_minor,
            fulfilled: row.fulfilled,
            returned: row.returned,
        };
        match orders.last_mut() {
            Some(order) if order.id == row.id => order.lines.push(line),
            _ => orders.push(Order {
                id: row.id,
                status: OrderStatus::parse(&row.status).map_err(Error::internal)?,
                customer_ref: row.customer_ref,
                lines: vec![line],
                total_minor: row.total_minor,
                currency: row.currency,
                created_at: row.created_at,
                updated_at: row.updated_at,
                expires_at: row.expires_at,
                cancel_reason: row
                    .cancel_reason
                    .as_deref()
                    .map(CancelReason::parse)
                    .transpose()
                    .map_err(Error::internal)?,
            }),
        }
    }
    Ok(orders)
}

/// Reads one order with its lines.
async fn fetch_order(tx: &mut Tx<'_>, id: OrderId) -> Result<Order, Error> {
    let rows = sqlx::query_as!(
        OrderLineRow,
        r#"
        SELECT o.id, o.status, o.customer_ref, o.currency, o.total_minor, o.created_at, o.updated_at,
               o.expires_at, o.cancel_reason, l.product_id, l.sku, l.name, l.quantity, l.unit_price_minor, l.line_total_minor, l.fulfilled, l.returned
        FROM orders o JOIN order_lines l ON l.order_id = o.id
        WHERE o.id = $1
        ORDER BY l.line_no
        "#,
        id.uuid()
    )
    .fetch_all(tx.conn().await?)
    .await
    .map_err(db_error("read the order"))?;
    group_orders(rows)?.pop().ok_or(Error::NotFound("order"))
}

impl OrderStore for PgStore {
    async fn get_order(&self, id: OrderId, deadline: Deadline) -> Result<Order, Error> {
        self.read(deadline, async |tx| fetch_order(tx, id).await)
            .await
    }

    async fn list_orders(
        &self,
        status: Option<OrderStatus>,
        page: PageRequest<OrderId>,
        deadline: Deadline,
    ) -> Result<Page<Order>, Error> {
        let rows = self
            .read(deadline, async |tx| {
                sqlx::query_as!(
                    OrderLineRow,
                    r#"
                    WITH candidate AS (
                        SELECT o.*, (SELECT count(*) FROM order_lines c WHERE c.order_id = o.id) AS line_count
                        FROM orders o
                        WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id < $2)
                        ORDER BY id DESC
                        LIMIT $3
                    ), page AS (
                        -- The orders whose lines start within the page's line budget: the page itself and
                        -- the one after it, which tells whether another page follows.
                        SELECT * FROM (
                            SELECT c.*, sum(c.line_count) OVER (ORDER BY c.id DESC) - c.line_count AS lines_before
                            FROM candidate c
                        ) w
                        WHERE lines_before <= $4
                    )
                    SELECT o.id, o.status, o.customer_ref, o.currency, o.total_minor, o.created_at, o.updated_at,
                           o.expires_at, o.cancel_reason, l.product_id, l.sku, l.name, l.quantity, l.unit_price_minor, l.line_total_minor, l.fulfilled, l.returned
                    FROM page o JOIN order_lines l ON l.order_id = o.id
                    ORDER BY o.id DESC, l.line_no
                    "#,
                    status.map(OrderStatus::as_str),
                    page.after().map(Id::uuid),
                    page.fetch() as i64,
                    MAX_PAGE_LINES as i64,
                )
                .fetch_all(tx.conn().await?)
                .await
                .map_err(db_error("list orders"))
            })
            .await?;
        Ok(Page::of_orders(group_orders(rows)?, page))
    }

    async fn list_fulfilments(
        &self,
        id: OrderId,
        page: PageRequest<FulfilmentId>,
        deadline: Deadline,
    ) -> Result<Page<Fulfilment>, Error> {
        // One statement answers both "does the order exist" (a row at all) and "its page of fulfilments".
        let rows = self
            .read(deadline, async |tx| {
                sqlx::query!(
                    r#"
                    SELECT ($2::uuid IS NULL OR EXISTS (
                               SELECT 1 FROM fulfilments c WHERE c.id = $2 AND c.order_id = o.id
                           )) AS "cursor_here!",
                           f.id AS "id?", f.created_at AS "created_at?", l.product_id AS "product_id?",
                           fl.quantity AS "quantity?"
                    FROM orders o
                    LEFT JOIN LATERAL (
                        SELECT * FROM fulfilments f
                        WHERE f.order_id = o.id AND ($2::uuid IS NULL OR f.id > $2)
                        ORDER BY f.id
                        LIMIT $3
                    ) f ON true
                    LEFT JOIN fulfilment_lines fl ON fl.fulfilment_id = f.id
                    LEFT JOIN order_lines l ON l.order_id = fl.order_id AND l.line_no = fl.line_no
                    WHERE o.id = $1
                    ORDER BY f.id, fl.line_no
                    "#,
                    id.uuid(),
                    page.after().map(Id::uuid),
                    page.fetch() as i64,
                )
                .fetch_all(tx.conn().await?)
                .await
                .map_err(db_error("list the fulfilments"))
            })
            .await?;
        // An order without (further) fulfilments comes back as one row of NULLs; in any other row every column
        // is set (they come from NOT NULL columns).
        let rows = of_order(
            rows,
            |r| r.cursor_here,
            |r| {
                let line = FulfilmentLine {
                    product_id: r.product_id?.into(),
                    quantity: r.quantity?,
                };
                Some((r.id?, r.created_at?, line))
            },
        )?;
        let fulfilments = group_lines(rows, |(id, created_at, line)| {
            let fulfilment = Fulfilment {
                id: id.into(),
                lines: Vec::new(),
                created_at,
            };
            Ok((fulfilment, line))
        })?;
        Ok(Page::from_rows(fulfilments, page))
    }

    async fn list_returns(
        &self,
        id: OrderId,
        page: PageRequest<ReturnId>,
        deadline: Deadline,
    ) -> Result<Page<Return>, Error> {
        // As for fulfilments: one statement, one row of NULLs for an order without (further) returns.
        let rows = self
            .read(deadline, async |tx| {
                sqlx::query!(
                    r#"
                    SELECT ($2::uuid IS NULL OR EXISTS (
                               SELECT 1 FROM returns c WHERE c.id = $2 AND c.order_id = o.id
                           )) AS "cursor_here!",
                           r.id AS "id?", r.reason AS "reason?", r.created_at AS "created_at?",
                           l.product_id AS "product_id?", rl.quantity AS "quantity?", rl.restock AS "restock?",
                           rl.damaged AS "damaged?"
                    FROM orders o
                    LEFT JOIN LATERAL (
                        SELECT * FROM returns r
                        WHERE r.order_id = o.id AND ($2::uuid IS NULL OR r.id > $2)
                        ORDER BY r.id
                        LIMIT $3
                    ) r ON true
                    LEFT JOIN return_lines rl ON rl.return_id = r.id
                    LEFT JOIN order_lines l ON l.order_id = rl.order_id AND l.line_no = rl.line_no
                    WHERE o.id = $1
                    ORDER BY r.id, rl.line_no
                    "#,
                    id.uuid(),
                    page.after().map(Id::uuid),
                    page.fetch() as i64,
                )
                .fetch_all(tx.conn().await?)
                .await
                .map_err(db_error("list the returns"))
            })
            .await?;
        let rows = of_order(
            rows,
            |r| r.cursor_here,
            |r| {
                let line = ReturnLine {
                    product_id: r.product_id?.into(),
                    quantity: r.quantity?,
                    restock: r.restock?,
                    damaged: r.damaged?,
                };
                Some((r.id?, r.reason?, r.created_at?, line))
            },
        )?;
        let returns = group_lines(rows, |(id, reason, created_at, line)| {
            let taken = Return {
                id: id.into(),
                reason: ReturnReason::parse(&reason).map_err(Error::internal)?,
                lines: Vec::new(),
                created_at,
            };
            Ok((taken, line))
        })?;
        Ok(Page::from_rows(returns, page))
    }

    async fn expire_orders(&self, limit: u32, deadline: Deadline) -> Result<Vec<OrderId>, Error> {
        self.expire_due_orders(limit, deadline).await
    }
}

/// The rows of a page of what an order holds (checked by [`page_beside`]), as `read` makes them of a row that
/// holds something.
fn of_order<Row, R>(
    rows: Vec<Row>,
    cursor_here: impl Fn(&Row) -> bool,
    read: impl Fn(Row) -> Option<R>,
) -> Result<Vec<R>, Error> {
    page_beside("order", &rows, cursor_here)?;
    Ok(rows.into_iter().filter_map(read).collect())
}

/// Something made of lines, read one line per row.
trait WithLines {
    type Line;

    fn same(&self, other: &Self) -> bool;
    fn lines(&mut self) -> &mut Vec<Self::Line>;
}

impl WithLines for Fulfilment {
    type Line = FulfilmentLine;

    fn same(&self, other: &Self) -> bool {
        self.id == other.id
    }

    fn lines(&mut self) -> &mut Vec<FulfilmentLine> {
        &mut self.lines
    }
}

impl WithLines for Return {
    type Line = ReturnLine;

    fn same(&self, other: &Self) -> bool {
        self.id == other.id
    }

    fn lines(&mut self) -> &mut Vec<ReturnLine> {
        &mut self.lines
    }
}

/// Folds rows (ordered by what they belong to, then line) into what they belong to, with its lines in row order.
fn group_lines<R, T: WithLines>(
    rows: Vec<R>,
    split: impl Fn(R) -> Result<(T, T::Line), Error>,
) -> Result<Vec<T>, Error> {
    let mut grouped: Vec<T> = Vec::new();
    for row in rows {
        let (item, line) = split(row)?;
        match grouped.last_mut() {
            Some(last) if last.same(&item) => last.lines().push(line),
            _ => {
                let mut item = item;
                item.lines().push(line);
                grouped.push(item);
            }
        }
    }
    Ok(grouped)
}

/// Places an order in `tx`: locks its products, plans it, reserves and writes everything with its events (see
/// [`Changes::place_order`]).
pub(super) async fn place_order(tx: &mut Tx<'_>, order: NewOrder) -> Result<Order, Error> {
    let id: OrderId = new_id();
    // Round trip 1: lock every product of the order, in id order (the one global lock order, so two
    // orders over the same products queue instead of deadlocking), and read them with the transaction's time.
    let rows = sqlx::query!(
        r#"
        SELECT p.*, now() AS "now!"
        FROM products p
        WHERE id = ANY($1)
        ORDER BY id
        FOR UPDATE
        "#,
        &order
            .lock_order()
            .into_iter()
            .map(Id::uuid)
            .collect::<Vec<_>>(),
    )
    .fetch_all(tx.conn().await?)
    .await
    .map_err(db_error("lock the order's products"))?;
    let now = rows.first().map(|row| row.now);
    let locked: Vec<Product> = rows.into_iter().map(|row| product_in!(row)).collect();
    let snapshots: Vec<ProductSnapshot> = locked.iter().map(ProductSnapshot::from).collect();
    let plan = plan_order(&order, &snapshots)?;
    let now = now.ok_or_else(|| Error::internal("an order was planned without products"))?;

    // Under the locks, what the reservation will leave is known already: the order as placed, each product
    // after it, and so the events, which are written by the same statement as the order.
    let placed = Order {
        id,
        status: OrderStatus::Pending,
        customer_ref: order.customer_ref.as_ref().map(|c| c.as_str().to_owned()),
        lines: plan.lines,
        total_minor: plan.total_minor,
        currency: plan.currency,
        created_at: now,
        updated_at: now,
        expires_at: now + order.hold(),
        cancel_reason: None,
    };
    let mut before = Vec::with_capacity(placed.lines.len());
    let mut after = Vec::with_capacity(placed.lines.len());
    for line in &placed.lines {
        let locked = locked
            .iter()
            .find(|p| p.id == line.product_id)
            .ok_or_else(|| Error::internal("a planned line's product was not locked"))?;
        before.push((locked.available(), locked.low_stock_threshold));
        after.push(Product {
            reserved: locked.reserved + line.quantity,
            version: locked.version + 1,
            updated_at: now,
            ..locked.clone()
        });
    }
    let written = EventColumns::of(&events::order_placed(
        &placed,
        before.into_iter().zip(&after),
    ));

    // Round trip 2: every line and the events in one statement. The reservation is a conditional UPDATE, and
    // the CHECK constraint (reserved <= on_hand) stands behind it; the order, its snapshot lines and one ledger
    // row per product are written alongside. It answers each reserved product as it now is.
    let lines = &placed.lines;
    let reserved = sqlx::query!(
        r#"
        WITH line AS (
            SELECT * FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
                WITH ORDINALITY AS l(product_id, quantity, sku, name, unit_price_minor, line_total_minor, line_no)
        ), reservation AS (
            UPDATE products p
            SET reserved = p.reserved + line.quantity, version = p.version + 1, updated_at = now()
            FROM line
            WHERE p.id = line.product_id
              AND p.on_hand - p.reserved - p.damaged - p.safety_stock + p.backorder_limit >= line.quantity
            RETURNING p.id, p.on_hand, p.reserved, p.damaged, p.version, line.quantity
        ), new_order AS (
            INSERT INTO orders (id, status, customer_ref, currency, total_minor, created_at, updated_at, expires_at)
            VALUES ($1, 'pending', $8, $9, $10, $11, $11, $12)
            RETURNING id
        ), new_lines AS (
            INSERT INTO order_lines
                (order_id, line_no, product_id, sku, name, quantity, unit_price_minor, line_total_minor)
            SELECT $1, line_no::int, product_id, sku, name, quantity, unit_price_minor, line_total_minor
            FROM line
        ), movements AS (
            INSERT INTO stock_movements
                (product_id, order_id, reason, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
                 damaged_after)
            SELECT id, $1, 'order_reserved', 0, quantity, on_hand, reserved, damaged FROM reservation
        ), written AS (
            SELECT write_events($13, $14, $15, $16) AS events
        )
        SELECT r.id AS "id?", r.reserved AS "reserved?", r.version AS "version?", w.events AS "events!"
        FROM new_order o CROSS JOIN written w LEFT JOIN reservation r ON true
        "#,
        id.uuid(),
        &lines.iter().map(|l| l.product_id.uuid()).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.quantity).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.sku.clone()).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.unit_price_minor).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.line_total_minor).collect::<Vec<_>>(),
        placed.customer_ref.as_deref(),
        &placed.currency,
        placed.total_minor,
        placed.created_at,
        placed.expires_at,
        &written.ids,
        &written.resource_ids,
        &written.types,
        &written.data,
    )
    .fetch_all(tx.conn().await?)
    .await
    .map_err(db_error("reserve the stock and write the order"))?;

    // The rows are locked and the plan checked availability, so every reservation must have applied, and
    // left each product as the events say; if not, something broke that invariant and the transaction is
    // rolled back.
    let applied = reserved.iter().all(|r| {
        after.iter().any(|p| {
            r.id == Some(p.id.uuid())
                && r.reserved == Some(p.reserved)
                && r.version == Some(p.version)
        })
    });
    let all = reserved.iter().filter(|r| r.id.is_some()).count() == after.len();
    if !applied || !all || reserved[0].events != written.ids.len() as i64 {
        return Err(Error::internal(
            "a reservation did not apply under lock as planned",
        ));
    }
    Ok(placed)
}

/// Locks an order's row (so that no other write or the expiry job changes it until `tx` ends) and answers
/// its status.
async fn lock_order(tx: &mut Tx<'_>, id: OrderId) -> Result<OrderStatus, Error> {
    let status = sqlx::query_scalar!(
        "SELECT status FROM orders WHERE id = $1 FOR UPDATE",
        id.uuid()
    )
    .fetch_optional(tx.conn().await?)
    .await
    .map_err(db_error("lock the order"))?
    .ok_or(Error::NotFound("order"))?;
    OrderStatus::parse(&status).map_err(Error::internal)
}

/// Locks the products of an order whose row `tx` has locked, in the global (id) order, before any changes;
/// answers the units on hand that can ship (all but the damaged) of those still in the catalogue.
async fn lock_products(tx: &mut Tx<'_>, id: OrderId) -> Result<HashMap<ProductId, i64>, Error> {
    let locked = sqlx::query!(
        r#"
        SELECT id, on_hand - damaged AS "sellable!" FROM products
        WHERE id IN (SELECT product_id FROM order_lines WHERE order_id = $1)
        ORDER BY id
        FOR UPDATE
        "#,
        id.uuid()
    )
    .fetch_all(tx.conn().await?)
    .await
    .map_err(db_error("lock the order's products"))?;
    Ok(locked
        .into_iter()
        .map(|p| (ProductId::from(p.id), p.sellable))
        .collect())
}

/// Cancels or fulfils an order in `tx` (see [`Changes::transition_order`]): [`Written::OrderTransitioned`],
/// or [`Written::OrderAlreadyDone`] when it had gone there already (nothing written).
pub(super) async fn transition(
    tx: &mut Tx<'_>,
    id: OrderId,
    action: OrderAction,
) -> Result<Written, Error> {
    let current = lock_order(tx, id).await?;
    let Transition::To(_) = current.apply(action)? else {
        return Ok(Written::OrderAlreadyDone(fetch_order(tx, id).await?));
    };
    let on_hand = lock_products(tx, id).await?;
    if action == OrderAction::Fulfill {
        let (_, order) = ship(tx, id, &Shipment::Rest, &on_hand).await?;
        return Ok(Written::OrderTransitioned(order));
    }
    end_order(tx, id, action)
        .await
        .map(Written::OrderTransitioned)
}

/// Ships some units of some lines of an order in `tx` (see [`Changes::fulfil`]).
pub(super) async fn fulfil(
    tx: &mut Tx<'_>,
    id: OrderId,
    request: NewFulfilment,
) -> Result<(Fulfilment, Order), Error> {
    lock_order(tx, id).await?;
    let on_hand = lock_products(tx, id).await?;
    ship(tx, id, &Shipment::Lines(request), &on_hand).await
}

/// Takes shipped units of an order back in `tx` (see [`Changes::take_back`]): locks the order and its products
/// (as a fulfilment does), reads the order, plans the return, and in one statement records it and its lines,
/// counts the units on the order's lines, puts the restocked ones back on hand and writes a ledger row per line.
pub(super) async fn take_back(
    tx: &mut Tx<'_>,
    id: OrderId,
    request: NewReturn,
) -> Result<(Return, Order), Error> {
    lock_order(tx, id).await?;
    let in_catalogue = lock_products(tx, id).await?;
    let mut order = fetch_order(tx, id).await?;
    let lines = plan_return(&order, &request)?;
    if let Some(gone) = lines
        .iter()
        .find(|l| l.restock && !in_catalogue.contains_key(&l.product_id))
    {
        return Err(restock_refused(gone.product_id));
    }
    let return_id: ReturnId = new_id();
    let written = sqlx::query!(
        r#"
        WITH line AS (
            SELECT l.line_no, l.product_id, s.quantity, s.restock, s.damaged
            FROM unnest($2::uuid[], $3::bigint[], $4::bool[], $7::bool[]) AS s(product_id, quantity, restock, damaged)
            JOIN order_lines l ON l.order_id = $1 AND l.product_id = s.product_id
        ), taken AS (
            INSERT INTO returns (id, order_id, reason) VALUES ($5, $1, $6) RETURNING created_at
        ), taken_line AS (
            INSERT INTO return_lines (return_id, order_id, line_no, quantity, restock, damaged)
            SELECT $5, $1, line_no, quantity, restock, damaged FROM line
        ), counted AS (
            UPDATE order_lines l SET returned = l.returned + line.quantity
            FROM line WHERE l.order_id = $1 AND l.line_no = line.line_no
            RETURNING l.line_no
        ), restocked AS (
            UPDATE products p
            SET on_hand = p.on_hand + line.quantity,
                damaged = p.damaged + CASE WHEN line.damaged THEN line.quantity ELSE 0 END,
                version = p.version + 1, updated_at = now()
            FROM line
            WHERE p.id = line.product_id AND line.restock
            RETURNING p.id, line.quantity, CASE WHEN line.damaged THEN line.quantity ELSE 0 END AS damaged_delta,
                      p.on_hand, p.reserved, p.damaged
        ), movements AS (
            INSERT INTO stock_movements
                (product_id, order_id, reason, on_hand_delta, reserved_delta, damaged_delta, on_hand_after,
                 reserved_after, damaged_after)
            SELECT id, $1, 'return_restock', quantity, 0, damaged_delta, on_hand, reserved, damaged FROM restocked
            UNION ALL
            SELECT p.id, $1, 'return_discarded', 0, 0, 0, p.on_hand, p.reserved, p.damaged
            FROM line JOIN products p ON p.id = line.product_id
            WHERE NOT line.restock
        ), touched AS (
            UPDATE orders SET updated_at = now() WHERE id = $1
        )
        SELECT (SELECT count(*) FROM counted) AS "counted!", (SELECT count(*) FROM restocked) AS "restocked!",
               (SELECT created_at FROM taken) AS "created_at!"
        "#,
        id.uuid(),
        &lines.iter().map(|l| l.product_id.uuid()).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.quantity).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.restock).collect::<Vec<_>>(),
        return_id.uuid(),
        request.reason.as_str(),
        &lines.iter().map(|l| l.damaged).collect::<Vec<_>>(),
    )
    .fetch_one(tx.conn().await?)
    .await
    .map_err(db_error("take the return back"))?;
    let restocks = lines.iter().filter(|l| l.restock).count() as i64;
    if written.counted != lines.len() as i64 || written.restocked != restocks {
        return Err(Error::internal(
            "a return did not apply under lock as planned",
        ));
    }
    let taken = Return {
        id: return_id,
        reason: request.reason,
        lines,
        created_at: written.created_at,
    };
    order.take_back(&taken);
    tx.emit(events::order_returned(&order));
    Ok((taken, order))
}

/// Ships `shipment` of an order whose row and products `tx` has locked: reads the order (after the locks, so
/// as it now is), plans the fulfilment, and in one statement records it, counts the units on the order's lines,
/// takes them from on hand and reserved with their ledger rows, and sets the order's status. Answers the
/// fulfilment and the order after it, and records the event.
async fn ship(
    tx: &mut Tx<'_>,
    id: OrderId,
    shipment: &Shipment,
    on_hand: &HashMap<ProductId, i64>,
) -> Result<(Fulfilment, Order), Error> {
    let mut order = fetch_order(tx, id).await?;
    let (lines, status) = plan_fulfilment(&order, shipment, on_hand)?;
    let fulfilment_id: FulfilmentId = new_id();
    let written = sqlx::query!(
        r#"
        WITH line AS (
            SELECT l.line_no, l.product_id, s.quantity
            FROM unnest($2::uuid[], $3::bigint[]) AS s(product_id, quantity)
            JOIN order_lines l ON l.order_id = $1 AND l.product_id = s.product_id
        ), fulfilment AS (
            INSERT INTO fulfilments (id, order_id) VALUES ($4, $1) RETURNING created_at
        ), fulfilment_line AS (
            INSERT INTO fulfilment_lines (fulfilment_id, order_id, line_no, quantity)
            SELECT $4, $1, line_no, quantity FROM line
        ), counted AS (
            UPDATE order_lines l SET fulfilled = l.fulfilled + line.quantity
            FROM line WHERE l.order_id = $1 AND l.line_no = line.line_no
            RETURNING l.line_no
        ), changed AS (
            UPDATE products p
            SET on_hand = p.on_hand - line.quantity, reserved = p.reserved - line.quantity,
                version = p.version + 1, updated_at = now()
            FROM line
            WHERE p.id = line.product_id
            RETURNING p.id, line.quantity, p.on_hand, p.reserved, p.damaged
        ), movements AS (
            INSERT INTO stock_movements
                (product_id, order_id, reason, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
                 damaged_after)
            SELECT id, $1, 'order_fulfilled', -quantity, -quantity, on_hand, reserved, damaged FROM changed
        ), status AS (
            UPDATE orders SET status = $5, updated_at = now() WHERE id = $1
        )
        SELECT (SELECT count(*) FROM counted) AS "counted!", (SELECT count(*) FROM changed) AS "changed!",
               (SELECT created_at FROM fulfilment) AS "created_at!"
        "#,
        id.uuid(),
        &lines.iter().map(|l| l.product_id.uuid()).collect::<Vec<_>>(),
        &lines.iter().map(|l| l.quantity).collect::<Vec<_>>(),
        fulfilment_id.uuid(),
        status.as_str(),
    )
    .fetch_one(tx.conn().await?)
    .await
    .map_err(db_error("ship the fulfilment"))?;
    // Every line was counted on the order; a product deleted since the order was placed has no stock to
    // take (it could not have been deleted while reserved), so every product must have been changed too.
    if written.counted != lines.len() as i64 || written.changed != lines.len() as i64 {
        return Err(Error::internal(
            "a fulfilment did not apply under lock as planned",
        ));
    }
    let fulfilment = Fulfilment {
        id: fulfilment_id,
        lines,
        created_at: written.created_at,
    };
    order.record(&fulfilment, status);
    tx.emit(events::order_fulfilment(&order));
    Ok((fulfilment, order))
}

/// Extends an order's hold in `tx` (see [`Changes::extend_hold`]): the order's row is locked, so the expiry job
/// (which skips locked orders, and sees the new end once this commits) and this never both win.
pub(super) async fn extend(
    tx: &mut Tx<'_>,
    id: OrderId,
    hold: std::time::Duration,
) -> Result<Written, Error> {
    let row = sqlx::query!(
        r#"SELECT status, expires_at, now() AS "now!" FROM orders WHERE id = $1 FOR UPDATE"#,
        id.uuid()
    )
    .fetch_optional(tx.conn().await?)
    .await
    .map_err(db_error("lock the order"))?
    .ok_or(Error::NotFound("order"))?;
    let status = OrderStatus::parse(&row.status).map_err(Error::internal)?;
    let Some(until) = extend_hold(status, row.expires_at, row.now, hold)? else {
        return Ok(Written::OrderAlreadyDone(fetch_order(tx, id).await?));
    };
    sqlx::query!(
        "UPDATE orders SET expires_at = $2, updated_at = now() WHERE id = $1",
        id.uuid(),
        until,
    )
    .execute(tx.conn().await?)
    .await
    .map_err(db_error("extend the order's hold"))?;
    let order = fetch_order(tx, id).await?;
    tx.emit(events::hold_extended(&order));
    Ok(Written::HoldExtended(order))
}

/// Cancels (or expires) an order whose row and products `tx` has locked: releases what its lines have left,
/// writes the ledger and the new status, and records the event. What has shipped stays shipped.
async fn end_order(tx: &mut Tx<'_>, id: OrderId, action: OrderAction) -> Result<Order, Error> {
    sqlx::query!(
        r#"
        WITH line AS (
            SELECT product_id, quantity - fulfilled AS quantity FROM order_lines
            WHERE order_id = $1 AND quantity > fulfilled
        ), changed AS (
            UPDATE products p
            SET reserved = p.reserved - line.quantity,
                version = p.version + 1,
                updated_at = now()
            FROM line
            WHERE p.id = line.product_id
            RETURNING p.id, line.quantity, p.on_hand, p.reserved, p.damaged
        ), movements AS (
            INSERT INTO stock_movements
                (product_id, order_id, reason, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
                 damaged_after)
            SELECT id, $1, $3, 0, -quantity, on_hand, reserved, damaged
            FROM changed
        )
        UPDATE orders SET status = $2, cancel_reason = $4, updated_at = now() WHERE id = $1
        "#,
        id.uuid(),
        action.target().as_str(),
        action.reason().as_str(),
        action.cancel_reason().map(CancelReason::as_str),
    )
    .execute(tx.conn().await?)
    .await
    .map_err(db_error("release the stock and change the order's status"))?;
    let order = fetch_order(tx, id).await?;
    tx.emit(events::order_ended(action, &order));
    Ok(order)
}

/// What one expiry transaction did.
enum Expiry {
    /// No pending order is past its hold (but for those skipped).
    Done,
    Expired(OrderId),
    /// Another transaction holds one of the order's products: left for a later run.
    Busy(OrderId),
}

/// Expires the pending order whose hold ended first, in `tx`, skipping `skipped` and any order or product
/// another transaction has locked (it never waits for a live request).
async fn expire_next(tx: &mut Tx<'_>, skipped: &[uuid::Uuid]) -> Result<Expiry, Error> {
    let due = sqlx::query!(
        r#"
        SELECT o.id, (SELECT count(*) FROM order_lines l WHERE l.order_id = o.id) AS "products!"
        FROM orders o
        WHERE o.status IN ('pending', 'partially_fulfilled') AND o.expires_at <= now() AND NOT (o.id = ANY($1))
        ORDER BY o.expires_at
        LIMIT 1
        FOR UPDATE OF o SKIP LOCKED
        "#,
        skipped,
    )
    .fetch_optional(tx.conn().await?)
    .await
    .map_err(db_error("find an expired order"))?;
    let Some(due) = due else {
        return Ok(Expiry::Done);
    };
    let id = OrderId::from(due.id);
    let locked = sqlx::query_scalar!(
        r#"
        SELECT count(*) AS "locked!" FROM (
            SELECT id FROM products
            WHERE id IN (SELECT product_id FROM order_lines WHERE order_id = $1)
            ORDER BY id
            FOR UPDATE SKIP LOCKED
        ) p
        "#,
        id.uuid()
    )
    .fetch_one(tx.conn().await?)
    .await
    .map_err(db_error("lock the expired order's products"))?;
    if locked < due.products {
        return Ok(Expiry::Busy(id));
    }
    end_order(tx, id, OrderAction::Expire).await?;
    Ok(Expiry::Expired(id))
}

impl PgStore {
    /// See [`OrderStore::expire_orders`]. Orders skipped because another transaction held them or their
    /// products are tried again once the rest are done (a live request holds its rows for milliseconds),
    /// at most [`EXPIRY_ROUNDS`] times.
    pub(super) async fn expire_due_orders(
        &self,
        limit: u32,
        deadline: Deadline,
    ) -> Result<Vec<OrderId>, Error> {
        let mut expired = Vec::new();
        let mut skipped = Vec::new();
        let mut rounds = 1;
        while expired.len() < limit as usize {
            let next = self
                .transaction(deadline, async |tx| expire_next(tx, &skipped).await)
                .await?;
            match next {
                Expiry::Expired(id) => expired.push(id),
                Expiry::Busy(id) => skipped.push(id.uuid()),
                Expiry::Done if skipped.is_empty() || rounds == EXPIRY_ROUNDS => break,
                Expiry::Done => {
                    rounds += 1;
                    skipped.clear();
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
        Ok(expired)
    }
}

/// How many times one expiry call goes over the orders it had to skip.
const EXPIRY_ROUNDS: u32 = 3;
