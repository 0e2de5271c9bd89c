//! The SAM template deploys exactly the API of the route table: one function per binary, each routed as the
//! contract says, configured the way the code reads its configuration. (The linters check the template
//! against CloudFormation; this checks it against the code.)

use std::collections::{BTreeMap, BTreeSet};

use inventory::http::ROUTES;
use serde_norway::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml at the repository root");
    serde_norway::from_str(&text).unwrap()
}

/// The functions of the template, by binary name.
fn functions(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .map(|r| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("every function names its binary")
                .to_owned();
            assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{binary}");
            (binary, r.clone())
        })
        .collect()
}

/// HTTP API route keys cannot end with a slash: the contract's `GET /swagger/` is the route `GET /swagger`
/// (the docs function serves both paths).
fn route_key(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

#[test]
fn the_template_routes_exactly_the_route_table() {
    let template = template();
    let mut routed = BTreeSet::new();
    for (binary, function) in functions(&template) {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        if binary == "purge-idempotency-keys" {
            let kinds: Vec<&Value> = events.values().map(|e| &e["Type"]).collect();
            assert_eq!(kinds, ["Schedule"], "the purge runs on a schedule only");
            continue;
        }
        for event in events.values() {
            assert_eq!(event["Type"], "HttpApi", "{binary}");
            let properties = &event["Properties"];
            let method = properties["Method"].as_str().unwrap().to_uppercase();
            let path = properties["Path"].as_str().unwrap().to_owned();
            assert!(
                routed.insert((method, path, binary.clone())),
                "{binary} is routed twice"
            );
        }
    }
    let table: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_owned(),
                route_key(r.path).to_owned(),
                r.function.to_owned(),
            )
        })
        .collect();
    assert_eq!(routed, table);
}

#[test]
fn every_binary_is_deployed_as_an_arm64_function() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["CodeUri"], ".");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    let deployed: BTreeSet<String> = functions(&template).into_keys().collect();
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let binaries: BTreeSet<String> = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bin| bin["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deployed, binaries);
}

#[test]
fn api_functions_reach_the_proxy_with_iam_auth_and_nothing_else() {
    let template = template();
    for (binary, function) in functions(&template) {
        if binary == "docs" || binary == "migrate" {
            continue;
        }
        let properties = &function["Properties"];
        let variables = properties["Environment"]["Variables"].as_mapping().unwrap();
        let names: BTreeSet<&str> = variables.keys().map(|k| k.as_str().unwrap()).collect();
        // What shared/src/config.rs reads for IAM auth; no DATABASE_URL, so no password anywhere.
        assert_eq!(
            names,
            BTreeSet::from([
                "DATABASE_HOST",
                "DATABASE_PORT",
                "DATABASE_NAME",
                "DATABASE_USER"
            ]),
            "{binary}"
        );
        let host = serde_norway::to_string(&variables["DATABASE_HOST"]).unwrap();
        assert!(host.contains("Proxy.Endpoint"), "{binary}: {host}");
        // As the API's own database user, not the owner of the schema.
        let user = serde_norway::to_string(&variables["DATABASE_USER"]).unwrap();
        assert_eq!(user.trim(), "!Ref AppUsername", "{binary}");
        assert_eq!(
            serde_norway::to_string(&properties["Role"]).unwrap().trim(),
            "!GetAtt ApiFunctionRole.Arn",
            "{binary}"
        );
        assert!(
            properties["VpcConfig"].is_mapping(),
            "{binary} is not in the VPC"
        );
    }
    // The docs function needs no database and no VPC.
    let docs = &functions(&template)["docs"]["Properties"];
    assert!(docs["VpcConfig"].is_null() && docs["Environment"].is_null());
}

#[test]
fn migrations_run_on_deploy_against_the_cluster_not_the_proxy() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let migrations: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "Custom::Migrations")
        .collect();
    assert_eq!(migrations.len(), 1);
    let token = serde_norway::to_string(&migrations[0]["Properties"]["ServiceToken"]).unwrap();
    assert!(token.contains("MigrateFunction.Arn"), "{token}");
    let migrate = &functions(&template)["migrate"]["Properties"];
    let variables = &migrate["Environment"]["Variables"];
    let host = serde_norway::to_string(&variables["DATABASE_HOST"]).unwrap();
    assert!(host.contains("DatabaseCluster.Endpoint.Address"), "{host}");
    let secret = serde_norway::to_string(&variables["DATABASE_SECRET_ARN"]).unwrap();
    assert!(secret.contains("DatabaseSecret"), "{secret}");
    let app_secret = serde_norway::to_string(&variables["DATABASE_APP_SECRET_ARN"]).unwrap();
    assert!(app_secret.contains("AppUserSecret"), "{app_secret}");
    // The proxy logs in as the API's user, never as the owner.
    let proxy = &template["Resources"]["Proxy"]["Properties"]["Auth"];
    let proxy = serde_norway::to_string(proxy).unwrap();
    assert!(
        proxy.contains("AppUserSecret") && proxy.contains("IAMAuth: REQUIRED"),
        "{proxy}"
    );
    assert!(!proxy.contains("DatabaseSecret"), "{proxy}");
    assert_eq!(
        template["Resources"]["Proxy"]["Properties"]["RequireTLS"],
        true
    );
}
