use serde::Serialize;

use super::ProductId;

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a use case can fail with. Knows nothing of HTTP: the edge maps each variant to a status and a
/// problem document in one place. Messages carried here are written by this crate for clients; causes of
/// `Unavailable` and `Internal` are kept for the logs and never shown to a client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// The resource named in the path does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A page's cursor was issued by the list of another resource of this kind (another order's fulfilments,
    /// say): the list it names has no such position.
    #[error("cursor of another {0}'s list")]
    CursorElsewhere(&'static str),
    /// Products named in an order's lines do not exist; one entry per unknown product.
    #[error("unknown products: {0:?}")]
    UnknownProducts(Vec<FieldError>),
    #[error("insufficient stock: {0:?}")]
    InsufficientStock(Vec<Shortage>),
    /// A fulfilment asked for more of some lines than is left to ship of them; one entry per such line.
    #[error("more than is left to fulfil: {0:?}")]
    BeyondRemaining(Vec<Remaining>),
    /// A return asked for more of some lines than shipped and has not come back; one entry per such line.
    #[error("more than can be returned: {0:?}")]
    BeyondReturnable(Vec<Remaining>),
    #[error("sku is already taken")]
    SkuTaken,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("precondition failed")]
    PreconditionFailed,
    /// The `Idempotency-Key` was first used with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// The caller already holds the most idempotency keys allowed; the write was not made.
    #[error("the caller holds {limit} idempotency keys already")]
    TooManyKeys { limit: u32 },
    /// Another request with the same `Idempotency-Key` is still running.
    #[error("a request with this idempotency key is in progress")]
    RequestInProgress,
    /// The store could not answer in time (unreachable, lock timeout, deadline reached) and nothing was
    /// committed: safe to retry.
    #[error("service unavailable")]
    Unavailable(#[source] Cause),
    /// The connection was lost or the deadline passed after the commit was sent: the change may or may not
    /// have happened. Retry with the same idempotency key to find out.
    #[error("outcome unknown")]
    OutcomeUnknown(#[source] Cause),
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl Error {
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        Self::Unavailable(cause.into())
    }

    pub fn outcome_unknown(cause: impl Into<Cause>) -> Self {
        Self::OutcomeUnknown(cause.into())
    }

    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::Internal(cause.into())
    }

    pub fn validation(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(pointer, detail)])
    }
}

/// One invalid field, located by an RFC 6901 JSON pointer into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where in the request body, e.g. `/lines/0/quantity` (empty for the body as a whole).
    #[schema(example = "/lines/0/quantity")]
    pub pointer: String,
    #[schema(example = "quantity must be between 1 and 1000000")]
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// A line that cannot be served from available stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Shortage {
    #[schema(value_type = String, format = Uuid)]
    pub product_id: ProductId,
    /// Units the order asked for (all its lines for this product together).
    pub requested: i64,
    /// Units that could be reserved.
    pub available: i64,
}

/// A line of a fulfilment (or a return) that asks for more units than the order has left to ship (or to take
/// back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Remaining {
    #[schema(value_type = String, format = Uuid)]
    pub product_id: ProductId,
    /// Units the fulfilment asked for (all its lines for this product together).
    pub requested: i64,
    /// Units of the line not yet shipped (for a fulfilment), or shipped and not yet returned (for a return).
    pub remaining: i64,
}

/// Collects every field error of a request so a client learns of all of them at once.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value of a successful check, records the failure of an unsuccessful one.
    pub fn check<T>(&mut self, pointer: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(detail) => {
                self.errors.push(FieldError::new(pointer, detail));
                None
            }
        }
    }

    /// A required field: missing is an error, present is checked.
    pub fn required<T, U>(
        &mut self,
        pointer: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<U> {
        match value {
            Some(value) => self.check(pointer, parse(value)),
            None => self.check(pointer, Err("is required".to_owned())),
        }
    }

    pub fn push(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, detail));
    }

    /// `Ok(value)` when no check failed (the value is then always complete), the collected errors otherwise.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Error> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ if self.errors.is_empty() => {
                Err(Error::internal("validator finished without a value"))
            }
            _ => Err(Error::Validation(self.errors)),
        }
    }
}
