//! Domain types and rules. Nothing here knows about HTTP, Lambda or SQL.

mod currency;
mod deadline;
mod error;
pub mod idempotency;
pub mod order;
mod page;
pub mod product;
pub mod stock;
mod values;

pub use currency::Currency;
pub use deadline::Deadline;
pub use error::{Error, FieldError, Shortage, Validator};
pub use page::{Cursor, MAX_PAGE_LINES, Page, PageRequest};
pub use values::{
    CustomerRef, Description, IfMatch, Note, PriceMinor, ProductName, Quantity, Sku, StockLevel,
    etag,
};

/// Identifier of a product (a UUID v7: time-ordered, which keeps keyset pagination in creation order).
pub type ProductId = uuid::Uuid;
/// Identifier of an order.
pub type OrderId = uuid::Uuid;
/// Identifier of a stock movement (a ledger row).
pub type MovementId = uuid::Uuid;

/// A new time-ordered identifier.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
