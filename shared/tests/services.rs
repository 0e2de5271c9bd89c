//! The services' behaviour on the in-memory adapter of the ports.

mod common;

use std::time::Duration;

use inventory::domain::{Deadline, Error, PageRequest};
use inventory::memory::MemoryStore;
use inventory::service::Inventory;

use common::{new_order, new_product};

behaviour_tests!(
    tokio::test, MemoryStore::new();
    initial_stock_is_recorded_in_the_ledger,
    a_duplicate_sku_is_refused,
    an_order_reserves_and_cancelling_releases,
    fulfilling_ships_the_stock,
    a_shortage_names_every_short_line_and_writes_nothing,
    unknown_products_are_all_named,
    one_order_has_one_currency,
    stock_adjustments_never_go_below_what_is_reserved,
    deleting_waits_for_reservations_and_keeps_past_orders,
    updates_honour_if_match_and_keep_order_snapshots,
    pages_walk_every_item_once,
    filters_find_skus_and_low_stock,
    the_ledger_of_an_unknown_product_is_not_found,
);

#[tokio::test]
async fn a_request_past_its_deadline_is_unavailable_and_changes_nothing() {
    let inventory = Inventory::new(MemoryStore::new());
    let product = inventory
        .create_product(new_product("A", 1, 3), common::deadline())
        .await
        .unwrap();
    let passed = Deadline::after(Duration::ZERO);
    let result = inventory
        .create_order(new_order(&[(product.id, 1)]), passed)
        .await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    let orders = inventory
        .list_orders(None, PageRequest::default(), common::deadline())
        .await
        .unwrap();
    assert!(orders.items.is_empty());
}

#[tokio::test]
async fn an_empty_patch_is_a_validation_error() {
    let inventory = Inventory::new(MemoryStore::new());
    let product = inventory
        .create_product(new_product("A", 1, 3), common::deadline())
        .await
        .unwrap();
    let result = inventory
        .update_product(product.id, Default::default(), None, common::deadline())
        .await;
    assert!(matches!(result, Err(Error::Validation(_))), "{result:?}");
}
