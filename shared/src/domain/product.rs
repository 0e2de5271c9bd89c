//! Products: catalogue data plus stock.

use time::OffsetDateTime;

use super::{Currency, Description, PriceMinor, ProductId, ProductName, Sku, StockLevel};

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    /// Units physically in stock.
    pub on_hand: i64,
    /// Units held by orders that hold stock; never negative, and more than on hand only by backorders.
    pub reserved: i64,
    pub low_stock_threshold: Option<i64>,
    /// Units that may be ordered beyond what is on hand (backorders, pre-orders): available may go as low
    /// as minus this. 0: never.
    pub backorder_limit: i64,
    /// Units kept on hand that no order may take.
    pub safety_stock: i64,
    /// Units on hand that cannot be sold; never more than on hand.
    pub damaged: i64,
    /// Bumped on every change of the product, stock included; the product's ETag.
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl super::Listed for Product {
    type Key = ProductId;

    fn key(&self) -> ProductId {
        self.id
    }
}

impl Product {
    /// Units on hand that are neither reserved, damaged nor kept back as safety stock: negative by what
    /// backorders owe (never below `-backorder_limit`).
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved - self.damaged - self.safety_stock
    }

    /// Units on hand that can be shipped: all but the damaged ones.
    pub fn sellable_on_hand(&self) -> i64 {
        self.on_hand - self.damaged
    }

    /// How its stock may be sold.
    pub fn policy(&self) -> StockPolicy {
        StockPolicy {
            backorder_limit: self.backorder_limit,
            safety_stock: self.safety_stock,
        }
    }

    /// Units an order may still reserve: what is available, plus what may be backordered.
    pub fn orderable(&self) -> i64 {
        self.available() + self.backorder_limit
    }

    /// Whether available stock is at or below the product's threshold.
    pub fn is_low_stock(&self) -> bool {
        self.low_stock_threshold
            .is_some_and(|threshold| self.available() <= threshold)
    }
}

/// The conflict of deleting a product that pending orders hold stock of.
pub fn delete_refused() -> super::Error {
    super::Error::Conflict(
        "the product still has stock: pending orders must be cancelled or fulfilled and on-hand stock \
         adjusted to zero (through the ledger) before it can be deleted"
            .into(),
    )
}

/// A valid request to create a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: ProductName,
    pub description: Option<Description>,
    pub price: PriceMinor,
    pub currency: Currency,
    /// Initial stock; recorded in the ledger as `received`.
    pub on_hand: StockLevel,
    pub low_stock_threshold: Option<StockLevel>,
    pub policy: StockPolicy,
}

/// How a product's stock may be sold: how far ahead of stock, and how much is kept back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockPolicy {
    /// See [`Product::backorder_limit`].
    pub backorder_limit: i64,
    /// See [`Product::safety_stock`].
    pub safety_stock: i64,
}

impl StockPolicy {
    /// Whether a product with `on_hand` of which `held` are reserved or damaged can have this policy:
    /// available stays within the backorder limit.
    pub fn admits(&self, on_hand: i64, held: i64) -> bool {
        on_hand - held - self.safety_stock >= -self.backorder_limit
    }
}

/// A valid change of catalogue fields. `None` leaves a field as it is; `Some(None)` clears a nullable one.
/// Stock is never changed here: that is what stock adjustments and orders are for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductPatch {
    pub name: Option<ProductName>,
    pub description: Option<Option<Description>>,
    pub price: Option<PriceMinor>,
    pub low_stock_threshold: Option<Option<StockLevel>>,
    pub backorder_limit: Option<StockLevel>,
    pub safety_stock: Option<StockLevel>,
}

impl ProductPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.price.is_none()
            && self.low_stock_threshold.is_none()
            && self.backorder_limit.is_none()
            && self.safety_stock.is_none()
    }

    /// Applies the patch to a product in memory (the Postgres adapter does the same in one UPDATE).
    pub fn apply_to(&self, product: &mut Product) {
        if let Some(name) = &self.name {
            product.name = name.as_str().to_owned();
        }
        if let Some(description) = &self.description {
            product.description = description.as_ref().map(|d| d.as_str().to_owned());
        }
        if let Some(price) = self.price {
            product.price_minor = price.get();
        }
        if let Some(threshold) = self.low_stock_threshold {
            product.low_stock_threshold = threshold.map(StockLevel::get);
        }
        if let Some(limit) = self.backorder_limit {
            product.backorder_limit = limit.get();
        }
        if let Some(safety) = self.safety_stock {
            product.safety_stock = safety.get();
        }
    }
}

/// Filters of the product list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    /// Exact SKU.
    pub sku: Option<String>,
    /// Only products whose available stock is at or below their threshold.
    pub low_stock: bool,
}

impl ProductFilter {
    pub fn matches(&self, product: &Product) -> bool {
        self.sku.as_ref().is_none_or(|sku| *sku == product.sku)
            && (!self.low_stock || product.is_low_stock())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn product(on_hand: i64, reserved: i64, threshold: Option<i64>) -> Product {
        Product {
            id: super::super::new_id(),
            sku: "SKU-1".into(),
            name: "Mug".into(),
            description: None,
            price_minor: 1250,
            currency: "EUR".into(),
            on_hand,
            reserved,
            low_stock_threshold: threshold,
            backorder_limit: 0,
            safety_stock: 0,
            damaged: 0,
            version: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn available_is_on_hand_minus_reserved() {
        assert_eq!(product(10, 3, None).available(), 7);
    }

    #[test]
    fn low_stock_compares_available_stock_with_the_threshold() {
        assert!(product(10, 5, Some(5)).is_low_stock());
        assert!(!product(10, 4, Some(5)).is_low_stock());
        assert!(!product(0, 0, None).is_low_stock());
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let mut p = product(1, 0, Some(3));
        ProductPatch {
            price: Some(PriceMinor::parse(99).unwrap()),
            low_stock_threshold: Some(None),
            ..ProductPatch::default()
        }
        .apply_to(&mut p);
        assert_eq!(p.price_minor, 99);
        assert_eq!(p.low_stock_threshold, None);
        assert_eq!(p.name, "Mug");
    }
}
