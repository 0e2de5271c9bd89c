//! The services' behaviour on the in-memory adapter of the ports.

use crate::common;

use std::time::Duration;

use inventory::domain::{Deadline, Error, PageRequest};
use inventory::memory::MemoryStore;
use inventory::service::Inventory;

use crate::common::{new_order, new_product};

crate::every_behaviour!(tokio::test, MemoryStore::new());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_with_one_key_have_one_effect() {
    let inventory = std::sync::Arc::new(Inventory::new(MemoryStore::new()));
    common::behaviour::racing_requests_with_one_key_have_one_effect(inventory, 32).await;
}

#[tokio::test]
async fn expired_keys_are_purged_in_batches_and_can_be_used_again() {
    common::behaviour::expired_keys_are_purged_in_batches_and_can_be_used_again(
        Inventory::new(MemoryStore::new()),
        async |inventory| inventory.store().age_keys(Duration::from_secs(25 * 3600)),
    )
    .await;
}

#[tokio::test]
async fn a_caller_holds_a_bounded_number_of_keys() {
    common::behaviour::a_caller_holds_a_bounded_number_of_keys(
        Inventory::new(MemoryStore::new().with_key_limit(3)),
        async |inventory| inventory.store().age_keys(Duration::from_secs(25 * 3600)),
    )
    .await;
}

#[tokio::test]
async fn a_hold_is_extended_never_shortened() {
    common::behaviour::a_hold_is_extended_never_shortened(
        Inventory::new(MemoryStore::new()),
        async |inventory| inventory.store().age_orders(Duration::from_secs(2 * 3600)),
    )
    .await;
}

#[tokio::test]
async fn a_partly_shipped_order_releases_only_what_is_left() {
    common::behaviour::a_partly_shipped_order_releases_only_what_is_left(
        Inventory::new(MemoryStore::new()),
        async |inventory| inventory.store().age_orders(Duration::from_secs(2 * 3600)),
    )
    .await;
}

#[tokio::test]
async fn expired_orders_release_their_stock_once() {
    common::behaviour::expired_orders_release_their_stock_once(
        Inventory::new(MemoryStore::new()),
        async |inventory| inventory.store().age_orders(Duration::from_secs(2 * 3600)),
    )
    .await;
}
