//! Domain types and rules. Nothing here knows about HTTP, Lambda or SQL.

mod currency;
mod deadline;
mod error;
pub mod event;
pub mod idempotency;
mod ids;
pub mod order;
mod page;
pub mod product;
pub mod stock;
mod values;

pub use currency::Currency;
pub use deadline::Deadline;
pub use error::{Error, FieldError, Remaining, Shortage, Validator};
pub use ids::{FulfilmentId, Id, MovementId, OrderId, ProductId, ReturnId, new_id};
pub use page::{Cursor, Listed, MAX_PAGE_LINES, Page, PageRequest, parse_limit};
pub use values::{
    CustomerRef, Description, IfMatch, Note, PriceMinor, ProductName, Quantity, Sku, StockLevel,
    etag,
};
