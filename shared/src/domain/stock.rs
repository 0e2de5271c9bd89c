//! The stock ledger and stock adjustments.

use time::OffsetDateTime;

use super::product::Product;
use super::values::MAX_STOCK;
use super::{Error, MovementId, Note, OrderId, ProductId};

/// Why stock changed. The first five are written by orders (`return_discarded`: a return that was not restocked,
/// moving nothing); the rest are adjustment reasons (`return_restock` also by an order's return).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MovementReason {
    OrderReserved,
    OrderReleased,
    OrderExpired,
    OrderFulfilled,
    ReturnDiscarded,
    Received,
    Correction,
    Damaged,
    Shrinkage,
    CycleCount,
    ReturnRestock,
}

impl MovementReason {
    pub const ADJUSTMENTS: [Self; 6] = [
        Self::Received,
        Self::Correction,
        Self::Damaged,
        Self::Shrinkage,
        Self::CycleCount,
        Self::ReturnRestock,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderReserved => "order_reserved",
            Self::OrderReleased => "order_released",
            Self::OrderExpired => "order_expired",
            Self::OrderFulfilled => "order_fulfilled",
            Self::ReturnDiscarded => "return_discarded",
            Self::Received => "received",
            Self::Correction => "correction",
            Self::Damaged => "damaged",
            Self::Shrinkage => "shrinkage",
            Self::CycleCount => "cycle_count",
            Self::ReturnRestock => "return_restock",
        }
    }

    /// Any reason, as stored.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::OrderReserved,
            Self::OrderReleased,
            Self::OrderExpired,
            Self::OrderFulfilled,
            Self::ReturnDiscarded,
        ]
        .into_iter()
        .chain(Self::ADJUSTMENTS)
        .find(|reason| reason.as_str() == value)
    }

    /// A reason a client may give for a stock adjustment.
    pub fn parse_adjustment(value: &str) -> Result<Self, String> {
        Self::ADJUSTMENTS
            .into_iter()
            .find(|reason| reason.as_str() == value)
            .ok_or_else(|| {
                "reason must be one of received, correction, damaged, shrinkage, cycle_count, return_restock"
                    .to_owned()
            })
    }
}

/// A valid manual change of a product's on-hand stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAdjustment {
    pub delta: i64,
    pub reason: MovementReason,
    pub note: Option<Note>,
}

impl StockAdjustment {
    pub fn parse_delta(delta: i64) -> Result<i64, String> {
        if delta == 0 {
            return Err("delta must not be zero".to_owned());
        }
        if delta.unsigned_abs() > MAX_STOCK as u64 {
            return Err(format!(
                "delta must be between -{MAX_STOCK} and {MAX_STOCK}"
            ));
        }
        Ok(delta)
    }

    /// The on-hand stock of `product` after the adjustment, or a conflict when it would drop below zero or
    /// take available stock (on hand less reserved and safety stock) below minus the backorder limit. The
    /// Postgres adapter has the database enforce the same rule with CHECK constraints.
    pub fn apply(&self, product: &Product) -> Result<i64, Error> {
        let after = product.on_hand.saturating_add(self.delta);
        let policy = product.policy();
        if after < 0 || !policy.admits(after, product.reserved) {
            return Err(below_reserved());
        }
        if after > MAX_STOCK {
            return Err(above_ceiling());
        }
        Ok(after)
    }
}

/// The conflict of an adjustment that would take stock past the largest level the API accepts.
pub fn above_ceiling() -> Error {
    Error::Conflict(format!(
        "the adjustment would take stock on hand above {MAX_STOCK}"
    ))
}

/// The conflict of an adjustment that would leave less on hand than nothing, or than pending orders reserve and
/// the safety stock keeps back (beyond what the backorder limit allows).
pub fn below_reserved() -> Error {
    Error::Conflict(
        "the change would leave less stock on hand than none, or than orders reserve and the safety stock \
         keeps back beyond what the backorder limit allows: available stock may not go below minus the \
         backorder limit"
            .into(),
    )
}

/// One row of the insert-only stock ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMovement {
    pub id: MovementId,
    pub product_id: ProductId,
    pub order_id: Option<OrderId>,
    pub reason: MovementReason,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub note: Option<String>,
    pub created_at: OffsetDateTime,
}

impl super::Listed for StockMovement {
    type Key = MovementId;

    fn key(&self) -> MovementId {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_adjustment_reasons_are_accepted_from_clients() {
        assert_eq!(
            MovementReason::parse_adjustment("cycle_count"),
            Ok(MovementReason::CycleCount)
        );
        assert!(MovementReason::parse_adjustment("order_reserved").is_err());
        assert_eq!(
            MovementReason::parse("order_reserved"),
            Some(MovementReason::OrderReserved)
        );
    }

    #[test]
    fn the_serialized_names_are_the_stored_names() {
        for reason in [
            Self_::OrderReserved,
            Self_::OrderReleased,
            Self_::OrderFulfilled,
        ]
        .into_iter()
        .chain(Self_::ADJUSTMENTS)
        {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, reason.as_str());
            assert_eq!(MovementReason::parse(reason.as_str()), Some(reason));
        }
    }

    use MovementReason as Self_;

    #[test]
    fn a_delta_is_nonzero_and_bounded() {
        assert!(StockAdjustment::parse_delta(0).is_err());
        assert!(StockAdjustment::parse_delta(MAX_STOCK + 1).is_err());
        assert!(StockAdjustment::parse_delta(-MAX_STOCK - 1).is_err());
        assert_eq!(StockAdjustment::parse_delta(-5), Ok(-5));
    }

    #[test]
    fn an_adjustment_may_not_take_stock_below_what_is_reserved() {
        let take = |delta| StockAdjustment {
            delta,
            reason: MovementReason::Damaged,
            note: None,
        };
        let stock =
            |on_hand, reserved| crate::domain::product::tests::product(on_hand, reserved, None);
        assert_eq!(take(-2).apply(&stock(10, 8)).unwrap(), 8);
        assert!(matches!(
            take(-3).apply(&stock(10, 8)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            take(-11).apply(&stock(10, 0)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            take(MAX_STOCK).apply(&stock(1, 0)),
            Err(Error::Conflict(_))
        ));
        assert_eq!(take(MAX_STOCK - 1).apply(&stock(1, 0)).unwrap(), MAX_STOCK);
    }

    #[test]
    fn safety_stock_and_backorders_move_the_floor_but_never_below_nothing_on_hand() {
        let take = |delta| StockAdjustment {
            delta,
            reason: MovementReason::Shrinkage,
            note: None,
        };
        let mut p = crate::domain::product::tests::product(10, 4, None);
        p.safety_stock = 3;
        assert_eq!(
            take(-3).apply(&p).unwrap(),
            7,
            "down to reserved plus safety stock"
        );
        assert!(take(-4).apply(&p).is_err());
        p.backorder_limit = 5;
        assert_eq!(
            take(-8).apply(&p).unwrap(),
            2,
            "backorders may owe up to the limit"
        );
        assert!(take(-9).apply(&p).is_err());
        p.backorder_limit = 100;
        assert_eq!(take(-10).apply(&p).unwrap(), 0);
        assert!(take(-11).apply(&p).is_err(), "never below nothing on hand");
    }
}
