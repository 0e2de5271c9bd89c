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
    /// Units on hand marked damaged (a positive delta) or sellable again (a negative one): on hand unchanged.
    MarkedDamaged,
}

impl MovementReason {
    pub const ADJUSTMENTS: [Self; 7] = [
        Self::Received,
        Self::Correction,
        Self::Damaged,
        Self::Shrinkage,
        Self::CycleCount,
        Self::ReturnRestock,
        Self::MarkedDamaged,
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
            Self::MarkedDamaged => "marked_damaged",
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
                "reason must be one of received, correction, damaged, shrinkage, cycle_count, return_restock, \
                 marked_damaged"
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

    /// `(on_hand_delta, damaged_delta)` of the adjustment of a product with `damaged` units: `marked_damaged`
    /// moves units between sellable and damaged, a `damaged` write-off disposes of damaged units first, every
    /// other reason changes sellable units on hand. (The Postgres adapter's statement computes the same.)
    pub fn deltas(&self, damaged: i64) -> (i64, i64) {
        match self.reason {
            MovementReason::MarkedDamaged => (0, self.delta),
            MovementReason::Damaged if self.delta < 0 => (self.delta, -damaged.min(-self.delta)),
            _ => (self.delta, 0),
        }
    }

    /// `(on_hand, damaged)` of `product` after the adjustment, or a conflict when on hand would drop below
    /// zero or below what is damaged, damaged below zero, or available stock (on hand less reserved, damaged
    /// and safety stock) below minus the backorder limit. The Postgres adapter has the database enforce the
    /// same rules with CHECK constraints.
    pub fn apply(&self, product: &Product) -> Result<(i64, i64), Error> {
        let (on_hand_delta, damaged_delta) = self.deltas(product.damaged);
        let on_hand = product.on_hand.saturating_add(on_hand_delta);
        let damaged = product.damaged + damaged_delta;
        if damaged < 0 || damaged > on_hand {
            return Err(damaged_refused());
        }
        let policy = product.policy();
        if on_hand < 0 || !policy.admits(on_hand, product.reserved + damaged) {
            return Err(below_reserved());
        }
        if on_hand > MAX_STOCK {
            return Err(above_ceiling());
        }
        Ok((on_hand, damaged))
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

/// The conflict of marking more units damaged than are on hand, or more sellable again than are damaged.
pub fn damaged_refused() -> Error {
    Error::Conflict(
        "damaged units are units on hand: a product cannot have more damaged than on hand, nor fewer than none"
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
    pub damaged_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub damaged_after: i64,
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
        assert_eq!(take(-2).apply(&stock(10, 8)).unwrap(), (8, 0));
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
        assert_eq!(
            take(MAX_STOCK - 1).apply(&stock(1, 0)).unwrap(),
            (MAX_STOCK, 0)
        );
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
            (7, 0),
            "down to reserved plus safety stock"
        );
        assert!(take(-4).apply(&p).is_err());
        p.backorder_limit = 5;
        assert_eq!(
            take(-8).apply(&p).unwrap(),
            (2, 0),
            "backorders may owe up to the limit"
        );
        assert!(take(-9).apply(&p).is_err());
        p.backorder_limit = 100;
        assert_eq!(take(-10).apply(&p).unwrap(), (0, 0));
        assert!(take(-11).apply(&p).is_err(), "never below nothing on hand");
    }

    #[test]
    fn damaged_units_move_through_their_own_reason_and_a_write_off_takes_them_first() {
        let adjust = |reason, delta| StockAdjustment {
            delta,
            reason,
            note: None,
        };
        let mut p = crate::domain::product::tests::product(10, 2, None);
        let mark = |delta| adjust(MovementReason::MarkedDamaged, delta);
        assert_eq!(mark(3).apply(&p).unwrap(), (10, 3));
        assert!(mark(9).apply(&p).is_err(), "available would go below zero");
        p.damaged = 3;
        assert_eq!(mark(-3).apply(&p).unwrap(), (10, 0));
        assert!(mark(-4).apply(&p).is_err(), "only 3 are damaged");
        let write_off = |delta| adjust(MovementReason::Damaged, delta);
        assert_eq!(write_off(-2).deltas(3), (-2, -2));
        assert_eq!(write_off(-5).deltas(3), (-5, -3));
        assert_eq!(write_off(-5).apply(&p).unwrap(), (5, 0));
        assert_eq!(
            adjust(MovementReason::Shrinkage, -5).apply(&p).unwrap(),
            (5, 3)
        );
        assert!(adjust(MovementReason::Shrinkage, -6).apply(&p).is_err());
    }
}
