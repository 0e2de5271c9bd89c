use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch, delete_refused};
use crate::domain::stock::{MovementReason, StockAdjustment, StockMovement};
use crate::domain::{
    Deadline, Error, Id, IfMatch, MovementId, OrderId, Page, PageRequest, ProductId, StockLevel,
    new_id,
};
use crate::events;
use crate::ports::ProductStore;

use super::{PgStore, Tx, db_error, page_beside};

/// The product in a row that has every column of `products` and more (each query's row is a type of its own).
macro_rules! product_in {
    ($row:ident) => {
        Product {
            id: $row.id.into(),
            sku: $row.sku,
            name: $row.name,
            description: $row.description,
            price_minor: $row.price_minor,
            currency: $row.currency,
            on_hand: $row.on_hand,
            reserved: $row.reserved,
            low_stock_threshold: $row.low_stock_threshold,
            backorder_limit: $row.backorder_limit,
            safety_stock: $row.safety_stock,
            damaged: $row.damaged,
            version: $row.version,
            created_at: $row.created_at,
            updated_at: $row.updated_at,
        }
    };
}
pub(super) use product_in;

impl ProductStore for PgStore {
    async fn get_product(&self, id: ProductId, deadline: Deadline) -> Result<Product, Error> {
        self.read(deadline, async |tx| {
            sqlx::query_as!(Product, "SELECT * FROM products WHERE id = $1", id.uuid())
                .fetch_optional(tx.conn().await?)
                .await
                .map_err(db_error("read the product"))?
                .ok_or(Error::NotFound("product"))
        })
        .await
    }

    async fn list_products(
        &self,
        filter: ProductFilter,
        page: PageRequest<ProductId>,
        deadline: Deadline,
    ) -> Result<Page<Product>, Error> {
        let rows = self
            .read(deadline, async |tx| {
                sqlx::query_as!(
                    Product,
                    r#"
                    SELECT * FROM products
                    WHERE ($1::uuid IS NULL OR id > $1)
                      AND ($2::text IS NULL OR sku = $2)
                      AND (NOT $3 OR (low_stock_threshold IS NOT NULL AND on_hand - reserved - damaged - safety_stock <= low_stock_threshold))
                    ORDER BY id
                    LIMIT $4
                    "#,
                    page.after().map(Id::uuid),
                    filter.sku,
                    filter.low_stock,
                    page.fetch() as i64,
                )
                .fetch_all(tx.conn().await?)
                .await
                .map_err(db_error("list products"))
            })
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    async fn update_product(
        &self,
        id: ProductId,
        patch: ProductPatch,
        if_match: Option<IfMatch>,
        deadline: Deadline,
    ) -> Result<Product, Error> {
        // `None` means any version; `Some(list)` means one of these (possibly none of them).
        let versions: Option<Vec<i64>> = match if_match {
            None | Some(IfMatch::Any) => None,
            Some(IfMatch::Versions(versions)) => Some(versions),
        };
        self.transaction(deadline, async |tx| {
            // The old threshold, read under the row's lock, tells whether the change made the product low on
            // stock.
            let updated = sqlx::query!(
                r#"
                WITH old AS (
                    SELECT id, low_stock_threshold, safety_stock FROM products WHERE id = $1 FOR UPDATE
                )
                UPDATE products p SET
                    name = COALESCE($2, p.name),
                    description = CASE WHEN $3 THEN $4 ELSE p.description END,
                    price_minor = COALESCE($5, p.price_minor),
                    low_stock_threshold = CASE WHEN $6 THEN $7 ELSE p.low_stock_threshold END,
                    backorder_limit = COALESCE($9, p.backorder_limit),
                    safety_stock = COALESCE($10, p.safety_stock),
                    version = p.version + 1,
                    updated_at = now()
                FROM old
                WHERE p.id = $1 AND old.id = p.id AND ($8::bigint[] IS NULL OR p.version = ANY($8))
                RETURNING p.*, old.low_stock_threshold AS old_threshold, old.safety_stock AS old_safety_stock
                "#,
                id.uuid(),
                patch.name.as_ref().map(|n| n.as_str()),
                patch.description.is_some(),
                patch
                    .description
                    .as_ref()
                    .and_then(|d| d.as_ref().map(|d| d.as_str())),
                patch.price.map(|p| p.get()),
                patch.low_stock_threshold.is_some(),
                patch.low_stock_threshold.flatten().map(StockLevel::get),
                versions.as_deref(),
                patch.backorder_limit.map(StockLevel::get),
                patch.safety_stock.map(StockLevel::get),
            )
            .fetch_optional(tx.conn().await?)
            .await
            .map_err(db_error("update the product"))?;
            if let Some(row) = updated {
                let (old_threshold, old_safety_stock) = (row.old_threshold, row.old_safety_stock);
                let product = product_in!(row);
                let old_available = product.available() + product.safety_stock - old_safety_stock;
                tx.emit(events::product_updated(
                    (old_available, old_threshold),
                    &product,
                ));
                return Ok(product);
            }
            // Nothing updated: either there is no such product or the precondition failed.
            let exists = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM products WHERE id = $1) AS "exists!""#,
                id.uuid()
            )
            .fetch_one(tx.conn().await?)
            .await
            .map_err(db_error("check that the product exists"))?;
            Err(if exists {
                Error::PreconditionFailed
            } else {
                Error::NotFound("product")
            })
        })
        .await
    }

    async fn delete_product(&self, id: ProductId, deadline: Deadline) -> Result<(), Error> {
        self.transaction(deadline, async |tx| {
            // The condition is part of the DELETE, so an order reserving stock concurrently either commits
            // first (and the row no longer qualifies) or waits for the delete and then finds no product.
            // Stock on hand must be adjusted to zero first, through the ledger, so the ledger of a deleted
            // product still sums to its (zero) stock.
            let deleted = sqlx::query_as!(
                Product,
                "DELETE FROM products WHERE id = $1 AND reserved = 0 AND on_hand = 0 RETURNING *",
                id.uuid()
            )
            .fetch_optional(tx.conn().await?)
            .await
            .map_err(db_error("delete the product"))?;
            if let Some(product) = deleted {
                tx.emit(events::product_deleted(&product));
                return Ok(());
            }
            let exists = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM products WHERE id = $1) AS "exists!""#,
                id.uuid()
            )
            .fetch_one(tx.conn().await?)
            .await
            .map_err(db_error("check that the product exists"))?;
            Err(if exists {
                delete_refused()
            } else {
                Error::NotFound("product")
            })
        })
        .await
    }

    async fn list_movements(
        &self,
        id: ProductId,
        page: PageRequest<MovementId>,
        deadline: Deadline,
    ) -> Result<Page<StockMovement>, Error> {
        // One statement answers "does the product exist" (a row at all), "is the cursor its own" and "its ledger
        // page".
        let rows = self
            .read(deadline, async |tx| {
                sqlx::query!(
                    r#"
                    SELECT ($2::uuid IS NULL OR EXISTS (
                               SELECT 1 FROM stock_movements c WHERE c.id = $2 AND c.product_id = p.id
                           )) AS "cursor_here!",
                           m.id AS "id?", m.order_id, m.reason AS "reason?",
                           m.on_hand_delta AS "on_hand_delta?", m.reserved_delta AS "reserved_delta?",
                           m.on_hand_after AS "on_hand_after?", m.reserved_after AS "reserved_after?",
                           m.damaged_delta AS "damaged_delta?", m.damaged_after AS "damaged_after?",
                           m.note, m.created_at AS "created_at?"
                    FROM products p
                    LEFT JOIN LATERAL (
                        SELECT * FROM stock_movements s
                        WHERE s.product_id = p.id
                          AND ($2::uuid IS NULL OR s.seq < (SELECT c.seq FROM stock_movements c WHERE c.id = $2))
                        ORDER BY s.seq DESC
                        LIMIT $3
                    ) m ON true
                    WHERE p.id = $1
                    ORDER BY m.seq DESC
                    "#,
                    id.uuid(),
                    page.after().map(Id::uuid),
                    page.fetch() as i64,
                )
                .fetch_all(tx.conn().await?)
                .await
                .map_err(db_error("list the stock movements"))
            })
            .await?;
        page_beside("product", &rows, |r| r.cursor_here)?;
        // A product without (further) movements comes back as one row of NULLs; in any other row every
        // column but order_id and note is set (they come from NOT NULL columns).
        let movements = rows
            .into_iter()
            .filter_map(|r| {
                let movement_id = r.id?;
                let reason = MovementReason::parse(r.reason.as_deref().unwrap_or_default())
                    .ok_or_else(|| Error::internal("unknown movement reason"));
                Some(reason.map(|reason| StockMovement {
                    id: movement_id.into(),
                    product_id: id,
                    order_id: r.order_id.map(OrderId::from),
                    reason,
                    on_hand_delta: r.on_hand_delta.unwrap_or_default(),
                    reserved_delta: r.reserved_delta.unwrap_or_default(),
                    on_hand_after: r.on_hand_after.unwrap_or_default(),
                    reserved_after: r.reserved_after.unwrap_or_default(),
                    damaged_delta: r.damaged_delta.unwrap_or_default(),
                    damaged_after: r.damaged_after.unwrap_or_default(),
                    note: r.note,
                    created_at: r.created_at.unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(movements, page))
    }
}

/// Creates a product in `tx`: the product and, when it starts with stock, the ledger row that explains it,
/// in one statement.
pub(super) async fn insert_product(tx: &mut Tx<'_>, new: NewProduct) -> Result<Product, Error> {
    let product = sqlx::query_as!(
        Product,
        r#"
        WITH product AS (
            INSERT INTO products
                (id, sku, name, description, price_minor, currency, on_hand, low_stock_threshold, backorder_limit,
                 safety_stock)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            RETURNING *
        ), initial_stock AS (
            INSERT INTO stock_movements
                (product_id, reason, on_hand_delta, reserved_delta, on_hand_after, reserved_after, note)
            SELECT id, 'received', on_hand, 0, on_hand, 0, 'initial stock' FROM product WHERE on_hand > 0
        )
        SELECT id AS "id!", sku AS "sku!", name AS "name!", description, price_minor AS "price_minor!",
               currency AS "currency!", on_hand AS "on_hand!", reserved AS "reserved!",
               low_stock_threshold, backorder_limit AS "backorder_limit!", safety_stock AS "safety_stock!",
               damaged AS "damaged!", version AS "version!", created_at AS "created_at!",
               updated_at AS "updated_at!"
        FROM product
        "#,
        new_id::<ProductId>().uuid(),
        new.sku.as_str(),
        new.name.as_str(),
        new.description.as_ref().map(|d| d.as_str()),
        new.price.get(),
        new.currency.as_str(),
        new.on_hand.get(),
        new.low_stock_threshold.map(StockLevel::get),
        new.policy.backorder_limit,
        new.policy.safety_stock,
    )
    .fetch_one(tx.conn().await?)
    .await
    .map_err(db_error("insert the product"))?;
    tx.emit(events::product_created(&product));
    Ok(product)
}

/// Adjusts on-hand stock in `tx`: the conditional change (guarded by the CHECK constraints) and its ledger
/// row, in one statement.
pub(super) async fn adjust(
    tx: &mut Tx<'_>,
    id: ProductId,
    adjustment: StockAdjustment,
) -> Result<(StockMovement, Product), Error> {
    let row = sqlx::query!(
        r#"
        WITH old AS (
            SELECT id, damaged FROM products WHERE id = $1 FOR UPDATE
        ), change AS (
            -- As StockAdjustment::deltas: `marked_damaged` moves units between sellable and damaged, a
            -- `damaged` write-off disposes of damaged units first, any other reason changes sellable units.
            SELECT id,
                   CASE WHEN $3 = 'marked_damaged' THEN 0 ELSE $2::bigint END AS on_hand_delta,
                   CASE WHEN $3 = 'marked_damaged' THEN $2
                        WHEN $3 = 'damaged' AND $2 < 0 THEN -least(-$2, damaged)
                        ELSE 0 END AS damaged_delta
            FROM old
        ), product AS (
            UPDATE products p
            SET on_hand = p.on_hand + c.on_hand_delta, damaged = p.damaged + c.damaged_delta,
                version = p.version + 1, updated_at = now()
            FROM change c
            WHERE p.id = c.id
            RETURNING p.*, c.on_hand_delta, c.damaged_delta
        ), movement AS (
            INSERT INTO stock_movements
                (product_id, reason, on_hand_delta, reserved_delta, damaged_delta, on_hand_after, reserved_after,
                 damaged_after, note)
            SELECT id, $3, on_hand_delta, 0, damaged_delta, on_hand, reserved, damaged, $4 FROM product
            RETURNING id, created_at
        )
        SELECT p.id AS "id!", p.sku AS "sku!", p.name AS "name!", p.description,
               p.price_minor AS "price_minor!", p.currency AS "currency!", p.on_hand AS "on_hand!",
               p.reserved AS "reserved!", p.low_stock_threshold, p.backorder_limit AS "backorder_limit!",
               p.safety_stock AS "safety_stock!", p.damaged AS "damaged!", p.version AS "version!",
               p.created_at AS "created_at!", p.updated_at AS "updated_at!",
               p.on_hand_delta AS "on_hand_delta!", p.damaged_delta AS "damaged_delta!",
               m.id AS "movement_id!", m.created_at AS "movement_created_at!"
        FROM product p, movement m
        "#,
        id.uuid(),
        adjustment.delta,
        adjustment.reason.as_str(),
        adjustment.note.as_ref().map(|n| n.as_str()),
    )
    .fetch_optional(tx.conn().await?)
    .await
    .map_err(db_error("adjust the stock"))?
    .ok_or(Error::NotFound("product"))?;
    let movement = StockMovement {
        id: row.movement_id.into(),
        product_id: row.id.into(),
        order_id: None,
        reason: adjustment.reason,
        on_hand_delta: row.on_hand_delta,
        reserved_delta: 0,
        damaged_delta: row.damaged_delta,
        on_hand_after: row.on_hand,
        reserved_after: row.reserved,
        damaged_after: row.damaged,
        note: adjustment.note.map(|n| n.into_inner()),
        created_at: row.movement_created_at,
    };
    let product = product_in!(row);
    tx.emit(events::stock_adjusted(&movement, &product));
    Ok((movement, product))
}
