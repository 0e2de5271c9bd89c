//! The route table in the code, the `cargo lambda watch` router in the workspace Cargo.toml and the function
//! binaries must describe the same API.

use std::collections::BTreeSet;

use inventory::http::{Endpoint, ROUTES};

fn manifest(path: &str) -> toml::Table {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.parse().unwrap()
}

#[test]
fn the_watch_router_serves_exactly_the_route_table() {
    let workspace = manifest("../Cargo.toml");
    let router = workspace["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .unwrap();
    let mut routed = BTreeSet::new();
    for (path, targets) in router {
        for target in targets.as_array().unwrap() {
            let method = target["method"].as_str().unwrap().to_owned();
            let function = target["function"].as_str().unwrap().to_owned();
            assert!(
                routed.insert((method, path.clone(), function)),
                "{path} is routed twice"
            );
        }
    }
    let table: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_owned(),
                r.path.to_owned(),
                r.function.to_owned(),
            )
        })
        .collect();
    assert_eq!(routed, table);
}

#[test]
fn the_watch_router_serves_exactly_the_documented_operations() {
    let workspace = manifest("../Cargo.toml");
    let router = workspace["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .unwrap();
    let routed: BTreeSet<(String, String)> = router
        .iter()
        .flat_map(|(path, targets)| {
            targets
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (t["method"].as_str().unwrap().to_lowercase(), path.clone()))
        })
        .collect();
    let document = inventory::http::openapi::document();
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    assert_eq!(routed, documented);
}

#[test]
fn every_route_has_a_function_binary_that_serves_its_endpoint() {
    let functions = manifest("Cargo.toml");
    let bins: BTreeSet<String> = functions["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bin| bin["name"].as_str().unwrap().to_owned())
        .collect();
    for route in ROUTES {
        assert!(
            bins.contains(route.function),
            "no binary {}",
            route.function
        );
        let main = std::fs::read_to_string(format!(
            "{}/{}/main.rs",
            env!("CARGO_MANIFEST_DIR"),
            route.function
        ))
        .unwrap();
        let serves = match route.endpoint {
            Endpoint::Docs => "bootstrap::run_docs()".to_owned(),
            endpoint => format!("bootstrap::run(inventory::http::Endpoint::{endpoint:?})"),
        };
        assert!(
            main.contains(&serves),
            "{} does not serve {:?}",
            route.function,
            route.endpoint
        );
    }
    let expected: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| r.function.to_owned())
        .chain(["migrate".to_owned(), "purge-idempotency-keys".to_owned()])
        .collect();
    assert_eq!(
        bins, expected,
        "a binary without a route, or a route without a binary"
    );
}
