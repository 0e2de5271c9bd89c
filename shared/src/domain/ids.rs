//! Identifiers, one type per resource, so that an order id cannot be passed where a product id is wanted. Each is
//! a UUID v7 (time-ordered, which keeps keyset pagination in creation order); the adapters convert them to and
//! from `Uuid` at their edges (SQL parameters and rows, JSON bodies and views), explicitly: no function takes
//! one kind where another is meant.

use std::fmt;
use std::hash::Hash;

use uuid::Uuid;

/// What every identifier type offers.
pub trait Id: Copy + Eq + Ord + Hash + fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// The list whose cursors hold this id, as a cursor records it: a cursor of one list is refused by another.
    const LIST: u8;

    fn from_uuid(uuid: Uuid) -> Self;
    fn uuid(self) -> Uuid;
}

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident = $list:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// The id as the adapters store and show it.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Id for $name {
            const LIST: u8 = $list;

            fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    )*};
}

ids! {
    /// Identifier of a product.
    ProductId = 1;
    /// Identifier of an order.
    OrderId = 2;
    /// Identifier of a stock movement (a ledger row).
    MovementId = 3;
    /// Identifier of a fulfilment (units of an order shipped together).
    FulfilmentId = 4;
    /// Identifier of a return (shipped units of an order that came back together).
    ReturnId = 5;
}

/// A new time-ordered identifier of any kind.
pub fn new_id<I: Id>() -> I {
    I::from_uuid(Uuid::now_v7())
}
