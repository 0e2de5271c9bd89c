//! The SAM template deploys exactly the API of the route table: one function per binary, each routed as the
//! contract says, behind the authorizer with the route's scope, configured the way the code reads its
//! configuration. (The linters check the template against CloudFormation; this checks it against the code.)

use std::collections::{BTreeMap, BTreeSet};

use inventory::http::ROUTES;
use inventory::http::routes::Scope;
use serde_norway::Value;
use serde_norway::value::TaggedValue;

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

/// A function's effective properties, as SAM computes them: the template's `Globals.Function` (less what the
/// function's `IgnoreGlobals` names) merged with its own `Properties`. Maps merge key by key, lists concatenate
/// (except `Architectures`, which the function's own replaces), and anything else, intrinsic functions included,
/// is the function's own when it has one.
fn effective(template: &Value, function: &Value) -> Value {
    let mut globals = template["Globals"]["Function"].clone();
    let globals_map = globals.as_mapping_mut().expect("Globals.Function");
    match &function["IgnoreGlobals"] {
        Value::Null => {}
        Value::String(all) if all == "*" => globals_map.clear(),
        Value::Sequence(keys) => {
            for key in keys {
                assert!(
                    globals_map.remove(key).is_some(),
                    "IgnoreGlobals names {key:?}, which Globals does not set"
                );
            }
        }
        other => panic!("IgnoreGlobals: {other:?}"),
    }
    let mut properties = merge(&globals, &function["Properties"]);
    if let Some(architectures) = function["Properties"].get("Architectures") {
        properties["Architectures"] = architectures.clone();
    }
    properties
}

fn merge(global: &Value, local: &Value) -> Value {
    match (global, local) {
        (global, Value::Null) => global.clone(),
        (Value::Mapping(global), Value::Mapping(local))
            if !is_intrinsic(global) && !is_intrinsic(local) =>
        {
            let mut merged = global.clone();
            for (key, value) in local {
                let value = match global.get(key) {
                    Some(global) => merge(global, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), value);
            }
            Value::Mapping(merged)
        }
        (Value::Sequence(global), Value::Sequence(local)) => {
            Value::Sequence(global.iter().chain(local).cloned().collect())
        }
        (_, local) => local.clone(),
    }
}

/// `{ "Fn::If": ... }` or `{ "Ref": ... }` in long form: SAM merges those as plain values.
fn is_intrinsic(map: &serde_norway::Mapping) -> bool {
    map.len() == 1
        && map
            .keys()
            .filter_map(Value::as_str)
            .any(|k| k == "Ref" || k == "Condition" || k.starts_with("Fn::"))
}

/// The YAML of a value, such as `!Ref AppUsername`, for comparing intrinsic functions.
fn yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap().trim().to_owned()
}

/// A short-form intrinsic function (`!Sub`, `!If`, ...) and its argument.
fn intrinsic<'a>(value: &'a Value, name: &str) -> &'a Value {
    match value {
        Value::Tagged(tagged) => {
            let TaggedValue { tag, value } = tagged.as_ref();
            assert!(tag == name, "expected !{name}, found {}", yaml(value));
            value
        }
        other => panic!("expected !{name}, found {}", yaml(other)),
    }
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

/// The function's HTTP API events: (method, path, event properties).
fn http_events(function: &Value) -> Vec<(String, String, Value)> {
    let Some(events) = function["Properties"]["Events"].as_mapping() else {
        return Vec::new();
    };
    events
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let properties = &e["Properties"];
            (
                properties["Method"].as_str().unwrap().to_uppercase(),
                properties["Path"].as_str().unwrap().to_owned(),
                properties.clone(),
            )
        })
        .collect()
}

/// The name of the HTTP API's only authorizer, which is also its default.
fn authorizer(template: &Value) -> String {
    let auth = &template["Resources"]["Api"]["Properties"]["Auth"];
    let names: Vec<&str> = auth["Authorizers"]
        .as_mapping()
        .expect("the API has authorizers")
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(auth["DefaultAuthorizer"], names[0]);
    names[0].to_owned()
}

/// The prefix expression of the route scopes (the value of `P` in `!Sub ["${P}orders.write", { P: ... }]`)
/// and the scope name after it.
fn route_scope(scope: &Value) -> (String, String) {
    let sub = intrinsic(scope, "Sub")
        .as_sequence()
        .expect("!Sub [text, variables]");
    let text = sub[0].as_str().unwrap();
    let name = text
        .strip_prefix("${P}")
        .unwrap_or_else(|| panic!("{text} does not start with the prefix ${{P}}"));
    (yaml(&sub[1]["P"]), name.to_owned())
}

/// The functions that run on a schedule and serve no route.
const JOBS: [&str; 3] = ["purge-expired", "expire-orders", "publish-events"];

#[test]
fn the_template_routes_exactly_the_route_table() {
    let template = template();
    let mut routed = BTreeSet::new();
    for (binary, function) in functions(&template) {
        let Some(events) = function["Properties"]["Events"].as_mapping() else {
            continue;
        };
        if JOBS.contains(&binary.as_str()) {
            let kinds: Vec<&Value> = events.values().map(|e| &e["Type"]).collect();
            assert_eq!(kinds, ["Schedule"], "{binary} runs on a schedule only");
            continue;
        }
        assert!(events.values().all(|e| e["Type"] == "HttpApi"), "{binary}");
        for (method, path, properties) in http_events(&function) {
            assert_eq!(yaml(&properties["ApiId"]), "!Ref Api", "{binary}");
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
fn every_route_needs_exactly_its_scope_and_the_public_ones_none() {
    let template = template();
    let authorizer = authorizer(&template);
    let mut checked = 0;
    for (binary, function) in functions(&template) {
        for (method, path, properties) in http_events(&function) {
            let route = ROUTES
                .iter()
                .find(|r| r.method == method && route_key(r.path) == path)
                .unwrap_or_else(|| panic!("{method} {path} is not in the route table"));
            let auth = &properties["Auth"];
            let keys: BTreeSet<&str> = auth
                .as_mapping()
                .unwrap_or_else(|| panic!("{binary}: {method} {path} names no Auth"))
                .keys()
                .map(|k| k.as_str().unwrap())
                .collect();
            match route.endpoint.scope() {
                Some(scope) => {
                    assert_eq!(
                        keys,
                        BTreeSet::from(["Authorizer", "AuthorizationScopes"]),
                        "{method} {path}"
                    );
                    assert_eq!(auth["Authorizer"], authorizer.as_str(), "{method} {path}");
                    let scopes: Vec<String> = auth["AuthorizationScopes"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|s| route_scope(s).1)
                        .collect();
                    assert_eq!(scopes, [scope.as_str()], "{method} {path}");
                }
                None => {
                    // Public: API Gateway lets the request through without a token.
                    assert_eq!(keys, BTreeSet::from(["Authorizer"]), "{method} {path}");
                    assert_eq!(auth["Authorizer"], "NONE", "{method} {path}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len());
}

#[test]
fn the_authorizer_and_the_functions_name_scopes_with_one_prefix() {
    let template = template();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(globals["AUTH_MODE"], "gateway");
    let prefix = yaml(&globals["AUTH_SCOPE_PREFIX"]);
    for function in functions(&template).values() {
        for (method, path, properties) in http_events(function) {
            for scope in properties["Auth"]["AuthorizationScopes"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                assert_eq!(route_scope(scope).0, prefix, "{method} {path}");
            }
        }
    }
    // With the user pool the template creates, the prefix is its resource server's identifier and a slash;
    // with an external issuer, the AuthScopePrefix parameter.
    let choice = intrinsic(&globals["AUTH_SCOPE_PREFIX"], "If")
        .as_sequence()
        .unwrap();
    assert_eq!(choice[0], "CreateUserPool");
    let server = &template["Resources"]["UserPoolResourceServer"]["Properties"];
    assert_eq!(
        choice[1].as_str().unwrap(),
        format!("{}/", server["Identifier"].as_str().unwrap())
    );
    assert_eq!(yaml(&choice[2]), "!Ref AuthScopePrefix");
}

#[test]
fn the_user_pool_grants_the_scopes_of_the_route_table_to_a_client_credentials_client() {
    let template = template();
    let resources = &template["Resources"];
    let server = &resources["UserPoolResourceServer"]["Properties"];
    let identifier = server["Identifier"].as_str().unwrap();
    let declared: Vec<(&str, &str)> = server["Scopes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["ScopeName"].as_str().unwrap(),
                s["ScopeDescription"].as_str().unwrap(),
            )
        })
        .collect();
    let table: Vec<(&str, &str)> = Scope::ALL
        .iter()
        .map(|s| (s.as_str(), s.description()))
        .collect();
    assert_eq!(declared, table);
    // Every scope of the table guards at least one route.
    let guarded: BTreeSet<Scope> = ROUTES.iter().filter_map(|r| r.endpoint.scope()).collect();
    assert_eq!(guarded, BTreeSet::from(Scope::ALL));

    let client = &resources["UserPoolClient"]["Properties"];
    assert_eq!(client["GenerateSecret"], true);
    assert_eq!(client["AllowedOAuthFlowsUserPoolClient"], true);
    assert_eq!(yaml(&client["AllowedOAuthFlows"]), "- client_credentials");
    let granted: Vec<&str> = client["AllowedOAuthScopes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let all: Vec<String> = Scope::ALL
        .iter()
        .map(|s| format!("{identifier}/{}", s.as_str()))
        .collect();
    assert_eq!(granted, all);

    // Cognito's access tokens carry no aud, only client_id, which API Gateway then matches against the audience.
    let jwt = &resources["Api"]["Properties"]["Auth"]["Authorizers"][authorizer(&template)]["JwtConfiguration"];
    let audience = yaml(&jwt["audience"]);
    assert!(
        audience.contains("- CreateUserPool\n- - !Ref UserPoolClient\n- !Ref AuthAudience"),
        "{audience}"
    );
    let issuer = yaml(&jwt["issuer"]);
    assert!(
        issuer.contains("https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}")
            && issuer.contains("!Ref AuthIssuer"),
        "{issuer}"
    );
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
    // INFO keeps Lambda's START and REPORT lines (durations, init duration).
    assert_eq!(globals["LoggingConfig"]["SystemLogLevel"], "INFO");
    let functions = functions(&template);
    for (binary, function) in &functions {
        let properties = effective(&template, function);
        assert_eq!(yaml(&properties["Architectures"]), "- arm64", "{binary}");
        assert_eq!(properties["Runtime"], "provided.al2023", "{binary}");
    }
    let deployed: BTreeSet<String> = functions.into_keys().collect();
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
        let properties = effective(&template, &function);
        if binary == "docs" || binary == "migrate" {
            let variables = &properties["Environment"]["Variables"];
            assert!(
                variables["AUTH_MODE"].is_null() && variables["AUTH_SCOPE_PREFIX"].is_null(),
                "{binary} serves no authenticated route"
            );
            continue;
        }
        let variables = properties["Environment"]["Variables"].as_mapping().unwrap();
        // A job's own settings (see shared/src/jobs.rs) aside,
        let own: &[&str] = match binary.as_str() {
            "purge-expired" => &["EVENT_RETENTION_DAYS"],
            "publish-events" => &["EVENT_BUS_NAME", "REQUEST_TIMEOUT_MS"],
            _ => &[],
        };
        let names: BTreeSet<&str> = variables
            .keys()
            .map(|k| k.as_str().unwrap())
            .filter(|name| !own.contains(name))
            .collect();
        // what shared/src/config.rs reads for IAM auth; no DATABASE_URL, so no password anywhere. And how
        // requests are authenticated: by API Gateway's JWT authorizer, the scope checked again by the function.
        assert_eq!(
            names,
            BTreeSet::from([
                "DATABASE_HOST",
                "DATABASE_PORT",
                "DATABASE_NAME",
                "DATABASE_USER",
                "AUTH_MODE",
                "AUTH_SCOPE_PREFIX",
            ]),
            "{binary}"
        );
        let host = yaml(&variables["DATABASE_HOST"]);
        assert!(host.contains("Proxy.Endpoint"), "{binary}: {host}");
        // As the API's own database user, not the owner of the schema.
        assert_eq!(
            yaml(&variables["DATABASE_USER"]),
            "!Ref AppUsername",
            "{binary}"
        );
        assert_eq!(variables["AUTH_MODE"], "gateway", "{binary}");
        // The publisher alone may also reach EventBridge, with a role and a security group of its own.
        let (role, group) = match binary.as_str() {
            "publish-events" => ("PublisherRole", "PublisherSecurityGroup"),
            _ => ("ApiFunctionRole", "ApiFunctionSecurityGroup"),
        };
        assert_eq!(
            yaml(&properties["Role"]),
            format!("!GetAtt {role}.Arn"),
            "{binary}"
        );
        assert_eq!(
            yaml(&properties["VpcConfig"]["SecurityGroupIds"]),
            format!("- !Ref {group}"),
            "{binary} is not in the VPC, or not only in its security group"
        );
    }
    // The docs function needs no database and no VPC.
    let docs = effective(&template, &functions(&template)["docs"]);
    assert!(docs["VpcConfig"].is_null() && docs["Environment"].is_null());
}

/// Each function that borrows connections from the proxy has a concurrency cap, and with the default parameters
/// the caps add up to less than the proxy's pool on the default instance class.
#[test]
fn a_burst_cannot_ask_the_proxy_for_more_connections_than_its_pool() {
    // max_connections of Aurora PostgreSQL on db.t4g.medium (Aurora User Guide, "Maximum connections to an
    // Aurora PostgreSQL DB instance").
    const T4G_MEDIUM_MAX_CONNECTIONS: i64 = 405;
    let template = template();
    assert_eq!(
        template["Parameters"]["DatabaseInstanceClass"]["Default"],
        "db.t4g.medium"
    );
    let default = template["Parameters"]["ReservedConcurrency"]["Default"]
        .as_i64()
        .unwrap();
    let pool =
        &template["Resources"]["ProxyTargetGroup"]["Properties"]["ConnectionPoolConfigurationInfo"];
    let percent = pool["MaxConnectionsPercent"].as_i64().unwrap();
    let budget = T4G_MEDIUM_MAX_CONNECTIONS * percent / 100;
    let mut total = 0;
    for (binary, function) in functions(&template) {
        let properties = effective(&template, &function);
        let host = yaml(&properties["Environment"]["Variables"]["DATABASE_HOST"]);
        if !host.contains("Proxy.Endpoint") {
            continue;
        }
        // !If [CapConcurrency, <cap>, !Ref AWS::NoValue]
        let cap = intrinsic(&properties["ReservedConcurrentExecutions"], "If")
            .as_sequence()
            .unwrap_or_else(|| panic!("{binary} has no concurrency cap"));
        assert_eq!(cap[0], "CapConcurrency", "{binary}");
        total += match &cap[1] {
            Value::Number(n) => n.as_i64().unwrap(),
            other if yaml(other) == "!Ref ReservedConcurrency" => default,
            other => panic!("{binary}: {}", yaml(other)),
        };
    }
    assert!(
        0 < total && total <= budget,
        "{total} concurrent executions for a pool of {budget}"
    );
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
    let properties = &migrations[0]["Properties"];
    let token = yaml(&properties["ServiceToken"]);
    assert!(token.contains("MigrateFunction.Arn"), "{token}");
    // CloudFormation sends the Update event that runs them again when any of these changes, not only the code.
    for (property, reference) in [
        ("MigrateFunctionVersion", "MigrateFunction.Version"),
        ("Cluster", "DatabaseCluster"),
        ("DatabaseName", "DatabaseName"),
        ("AppUsername", "AppUsername"),
        ("DatabaseSecret", "DatabaseSecret"),
        ("AppUserSecret", "AppUserSecret"),
    ] {
        assert_eq!(
            yaml(&properties[property]),
            format!("!Ref {reference}"),
            "{property}"
        );
    }
    let migrate = effective(&template, &functions(&template)["migrate"]);
    let variables = &migrate["Environment"]["Variables"];
    let host = yaml(&variables["DATABASE_HOST"]);
    assert!(host.contains("DatabaseCluster.Endpoint.Address"), "{host}");
    let secret = yaml(&variables["DATABASE_SECRET_ARN"]);
    assert!(secret.contains("DatabaseSecret"), "{secret}");
    let app_secret = yaml(&variables["DATABASE_APP_SECRET_ARN"]);
    assert!(app_secret.contains("AppUserSecret"), "{app_secret}");
    assert!(
        variables["DATABASE_USER"].is_null(),
        "the migrate function connects as the owner"
    );
    assert_eq!(
        yaml(&migrate["VpcConfig"]["SecurityGroupIds"]),
        "- !Ref MigrateFunctionSecurityGroup"
    );
    // The proxy logs in as the API's user, never as the owner.
    let proxy = yaml(&template["Resources"]["Proxy"]["Properties"]["Auth"]);
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

#[test]
fn every_function_that_uses_the_database_has_its_errors_and_throttles_watched() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    // The functions each alarm of `metric` reads, by logical id.
    let watched = |metric: &str| -> BTreeSet<String> {
        resources
            .values()
            .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
            .flat_map(|alarm| {
                alarm["Properties"]["Metrics"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|m| m["MetricStat"]["Metric"]["MetricName"] == metric)
            .map(|m| {
                let dimension = &m["MetricStat"]["Metric"]["Dimensions"][0];
                assert_eq!(dimension["Name"], "FunctionName");
                intrinsic(&dimension["Value"], "Ref")
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let using_database: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .filter(|(_, r)| yaml(&r["Properties"]["Role"]) == "!GetAtt ApiFunctionRole.Arn")
        .map(|(id, _)| id.as_str().unwrap().to_owned())
        .collect();
    assert!(using_database.len() > 10, "{using_database:?}");
    for metric in ["Errors", "Throttles"] {
        let watched = watched(metric);
        let missed: Vec<&String> = using_database.difference(&watched).collect();
        assert!(
            missed.is_empty(),
            "no alarm reads the {metric} of {missed:?}"
        );
    }
}
