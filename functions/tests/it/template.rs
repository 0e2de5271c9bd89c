//! The two stacks deploy exactly the API of the route table, configured the way the code reads its configuration,
//! and deploy safely: the data (network, database, proxy, user pool) in `data.yaml`, with a lifecycle of its own;
//! the code in `template.yaml`, which imports the data stack's exports and holds nothing stateful. (The linters
//! check the templates against CloudFormation; this checks them against the code and the rules of each service.)

use std::collections::{BTreeMap, BTreeSet};

use inventory::http::ROUTES;
use inventory::http::routes::Scope;
use serde_norway::Value;
use serde_norway::value::TaggedValue;

fn read(name: &str) -> Value {
    let path = format!("{}/../{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap()
}

/// The application stack.
fn template() -> Value {
    read("template.yaml")
}

/// The data stack.
fn data() -> Value {
    read("data.yaml")
}

/// The functions of the application template built from this workspace, by binary name (the quota check's few
/// lines of Python are inline).
fn functions(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .filter(|r| r["Properties"]["InlineCode"].is_null())
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

/// The YAML of a value, such as `!Ref AuthScopePrefix`, for comparing intrinsic functions.
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

/// The export of the data stack that `value` imports (`{ "Fn::ImportValue": !Sub "${DataStack}-Name" }`).
fn imported(value: &Value) -> String {
    let sub = intrinsic(&value["Fn::ImportValue"], "Sub");
    sub.as_str()
        .and_then(|s| s.strip_prefix("${DataStack}-"))
        .unwrap_or_else(|| panic!("not an import of the data stack: {}", yaml(value)))
        .to_owned()
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

/// The scope a route's `!Sub "${AuthScopePrefix}<scope>"` names.
fn route_scope(scope: &Value) -> String {
    let text = intrinsic(scope, "Sub").as_str().expect("!Sub text");
    text.strip_prefix("${AuthScopePrefix}")
        .unwrap_or_else(|| panic!("{text} does not start with the prefix"))
        .to_owned()
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
            assert_eq!(kinds, ["ScheduleV2"], "{binary} runs on a schedule only");
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
    let auth = &template["Resources"]["Api"]["Properties"]["Auth"];
    let authorizers: Vec<&Value> = auth["Authorizers"].as_mapping().unwrap().keys().collect();
    assert_eq!(authorizers.len(), 1);
    // A route that names no authorizer gets this one, the only one.
    assert_eq!(&auth["DefaultAuthorizer"], authorizers[0]);
    let mut checked = 0;
    for (binary, function) in functions(&template) {
        for (method, path, properties) in http_events(&function) {
            let route = ROUTES
                .iter()
                .find(|r| r.method == method && route_key(r.path) == path)
                .unwrap_or_else(|| panic!("{method} {path} is not in the route table"));
            let auth = properties["Auth"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{binary}: {method} {path} names no Auth"));
            let keys: BTreeSet<&str> = auth.keys().map(|k| k.as_str().unwrap()).collect();
            match route.endpoint.scope() {
                Some(scope) => {
                    assert_eq!(
                        keys,
                        BTreeSet::from(["AuthorizationScopes"]),
                        "{method} {path}"
                    );
                    let scopes: Vec<String> = auth["AuthorizationScopes"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(route_scope)
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
    assert_eq!(yaml(&globals["AUTH_SCOPE_PREFIX"]), "!Ref AuthScopePrefix");
    // By default, the prefix of the data stack's user pool: its resource server's identifier and a slash.
    let server = &data()["Resources"]["UserPoolResourceServer"]["Properties"];
    assert_eq!(
        template["Parameters"]["AuthScopePrefix"]["Default"]
            .as_str()
            .unwrap(),
        format!("{}/", server["Identifier"].as_str().unwrap())
    );
}

#[test]
fn the_user_pool_grants_the_scopes_of_the_route_table_to_a_client_credentials_client() {
    let data = data();
    let resources = &data["Resources"];
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
}

/// Cognito's access tokens carry no aud, only client_id, which API Gateway then matches against the audience:
/// the authorizer accepts the data stack's admin client and every client id the operator adds, or, with an
/// issuer of the operator's, exactly the audiences given.
#[test]
fn the_authorizer_accepts_a_list_of_clients() {
    let template = template();
    let jwt = &template["Resources"]["Api"]["Properties"]["Auth"]["Authorizers"]["OAuth2"]["JwtConfiguration"];
    let issuer = intrinsic(&jwt["issuer"], "If").as_sequence().unwrap();
    assert_eq!(issuer[0], "UsePool");
    assert_eq!(imported(&issuer[1]), "Issuer");
    assert_eq!(yaml(&issuer[2]), "!Ref AuthIssuer");

    let audience = intrinsic(&jwt["audience"], "If").as_sequence().unwrap();
    assert_eq!(audience[0], "UsePool");
    assert_eq!(yaml(&audience[2]), "!Ref AuthAudience");
    let with_pool = intrinsic(&audience[1], "If").as_sequence().unwrap();
    assert_eq!(with_pool[0], "HasAudience");
    // Both branches hold the admin client; the first adds the operator's list.
    let joined = yaml(&with_pool[1]);
    assert!(
        joined.contains("${DataStack}-ClientId") && joined.contains("!Ref AuthAudience"),
        "{joined}"
    );
    assert_eq!(imported(&with_pool[2][0]), "ClientId");
    assert_eq!(
        template["Parameters"]["AuthAudience"]["Type"],
        "CommaDelimitedList"
    );
    let exports = exports(&data());
    assert!(exports.contains("Issuer") && exports.contains("ClientId"));
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
        assert_eq!(imported(&variables["DATABASE_HOST"]), "ProxyEndpoint");
        // As the API's own database user, not the owner of the schema.
        assert_eq!(variables["DATABASE_USER"], "inventory_app", "{binary}");
        assert_eq!(variables["AUTH_MODE"], "gateway", "{binary}");
        // The publisher alone may also reach EventBridge, with a role and a security group of its own.
        let (role, group) = match binary.as_str() {
            "publish-events" => ("PublisherRole", "PublisherSecurityGroup"),
            _ => ("FunctionRole", "FunctionSecurityGroup"),
        };
        assert_eq!(
            yaml(&properties["Role"]),
            format!("!GetAtt {role}.Arn"),
            "{binary}"
        );
        let groups = properties["VpcConfig"]["SecurityGroupIds"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{binary} is not in the VPC"));
        assert_eq!(groups.len(), 1, "{binary}: only its own security group");
        assert_eq!(imported(&groups[0]), group, "{binary}");
    }
    // The docs function needs no database and no VPC.
    let docs = effective(&template, &functions(&template)["docs"]);
    assert!(docs["VpcConfig"].is_null() && docs["Environment"].is_null());

    // Both roles connect as the API's user through the proxy (its prx- id), and as nothing else.
    let resources = &template["Resources"];
    let connect = yaml(&resources["ConnectThroughProxy"]["Properties"]["PolicyDocument"]);
    assert!(
        connect.contains("rds-db:connect")
            && connect.contains(":dbuser:${Proxy}/inventory_app")
            && connect.contains("${DataStack}-ProxyResourceId"),
        "{connect}"
    );
    for role in ["FunctionRole", "PublisherRole"] {
        let policies = yaml(&resources[role]["Properties"]["ManagedPolicyArns"]);
        assert!(policies.contains("!Ref ConnectThroughProxy"), "{role}");
    }
}

/// What the functions import is what the data stack exports.
#[test]
fn every_import_is_an_export_of_the_data_stack() {
    fn imports(value: &Value, found: &mut BTreeSet<String>) {
        match value {
            Value::Mapping(map) => {
                if map.contains_key("Fn::ImportValue") {
                    found.insert(imported(value));
                }
                map.values().for_each(|v| imports(v, found));
            }
            Value::Sequence(items) => items.iter().for_each(|v| imports(v, found)),
            Value::Tagged(tagged) => imports(&tagged.value, found),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    imports(&template(), &mut found);
    let exports = exports(&data());
    let missing: Vec<&String> = found.difference(&exports).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
    assert!(found.len() >= 10, "{found:?}");
}

/// The outputs of the data stack exported as `<stack name>-<output>`, by output name.
fn exports(data: &Value) -> BTreeSet<String> {
    data["Outputs"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, output)| !output["Export"].is_null())
        .map(|(name, output)| {
            let name = name.as_str().unwrap();
            assert_eq!(
                intrinsic(&output["Export"]["Name"], "Sub").as_str(),
                Some(format!("${{AWS::StackName}}-{name}").as_str())
            );
            name.to_owned()
        })
        .collect()
}

/// Every stateful resource lives in the data stack, and the application stack has none: no deploy, failure or
/// rollback of the application can delete or replace the database.
#[test]
fn the_database_and_the_network_are_in_the_data_stack_only() {
    const STATEFUL: [&str; 7] = [
        "AWS::RDS::",
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::SecurityGroup",
        "AWS::Cognito::",
        "AWS::SecretsManager::",
        "AWS::EC2::VPCEndpoint",
    ];
    let types = |template: &Value| -> Vec<String> {
        template["Resources"]
            .as_mapping()
            .unwrap()
            .values()
            .map(|r| r["Type"].as_str().unwrap().to_owned())
            .collect()
    };
    for kind in types(&template()) {
        assert!(
            !STATEFUL.iter().any(|s| kind.starts_with(s)),
            "{kind} in the application stack"
        );
    }
    let data_types = types(&data());
    for needed in [
        "AWS::EC2::VPC",
        "AWS::RDS::DBCluster",
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBProxy",
        "AWS::Cognito::UserPool",
    ] {
        assert!(data_types.iter().any(|t| t == needed), "{needed}");
    }
    // And the data stack has no code: nothing in it changes with a release.
    assert!(
        data_types
            .iter()
            .all(|t| !t.starts_with("AWS::Lambda::") && !t.starts_with("AWS::Serverless::"))
    );
}

#[test]
fn the_data_stack_protects_the_database() {
    let data = data();
    let resources = &data["Resources"];
    let cluster = &resources["DatabaseCluster"];
    // Deleting the stack leaves a final snapshot; a replacement never deletes the cluster that has the data.
    assert_eq!(cluster["DeletionPolicy"], "Snapshot");
    assert_eq!(cluster["UpdateReplacePolicy"], "Retain");
    assert_eq!(
        yaml(&cluster["Properties"]["DeletionProtection"]),
        "!Ref DeletionProtection"
    );
    assert_eq!(data["Parameters"]["DeletionProtection"]["Default"], "true");
    assert_eq!(cluster["Properties"]["StorageEncrypted"], true);
    // What would replace the cluster is not a parameter: the names are fixed.
    assert_eq!(cluster["Properties"]["DatabaseName"], "inventory");
    assert_eq!(cluster["Properties"]["MasterUsername"], "inventory_admin");
    for parameter in data["Parameters"].as_mapping().unwrap().keys() {
        let name = parameter.as_str().unwrap();
        assert!(
            !["DatabaseName", "DatabaseUsername", "AppUsername"].contains(&name),
            "{name}"
        );
    }
    // The user pool holds the integrations' client ids and secrets.
    assert_eq!(resources["UserPool"]["DeletionPolicy"], "Retain");
    assert_eq!(resources["UserPool"]["UpdateReplacePolicy"], "Retain");
}

/// No stored password: RDS manages the master user's (read by the migrate function only), and the API's user
/// logs in with IAM tokens end to end, the functions to the proxy and the proxy to the database.
#[test]
fn no_password_is_stored_for_the_api() {
    let data = data();
    let resources = &data["Resources"];
    let cluster = &resources["DatabaseCluster"]["Properties"];
    assert_eq!(cluster["ManageMasterUserPassword"], true);
    assert!(cluster["MasterUserPassword"].is_null());
    assert_eq!(cluster["EnableIAMDatabaseAuthentication"], true);
    let proxy = &resources["Proxy"]["Properties"];
    assert_eq!(proxy["DefaultAuthScheme"], "IAM_AUTH");
    assert!(proxy["Auth"].is_null(), "no secret for the proxy");
    assert_eq!(proxy["RequireTLS"], true);
    let role = yaml(&resources["ProxyRole"]["Properties"]["Policies"]);
    assert!(
        role.contains("rds-db:connect")
            && role.contains(":dbuser:${DatabaseCluster.DBClusterResourceId}/inventory_app"),
        "{role}"
    );
    assert!(!role.contains("secretsmanager"), "{role}");
    for template in [data.clone(), template()] {
        let text = yaml(&template);
        assert!(!text.contains("AWS::SecretsManager::Secret"));
    }
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
    assert_eq!(
        yaml(&properties["ServiceToken"]),
        "!GetAtt MigrateFunction.Arn"
    );
    // A new version (new migrations) or another cluster sends the Update event that migrates again; the
    // handler tells a rollback by the version going down (shared/src/deploy.rs).
    assert_eq!(
        yaml(&properties["MigrateFunctionVersion"]),
        "!Ref MigrateFunction.Version"
    );
    assert_eq!(imported(&properties["Cluster"]), "ClusterEndpoint");
    let migrate = effective(&template, &functions(&template)["migrate"]);
    assert_eq!(migrate["AutoPublishAlias"], "live");
    let variables = &migrate["Environment"]["Variables"];
    assert_eq!(imported(&variables["DATABASE_HOST"]), "ClusterEndpoint");
    assert_eq!(
        imported(&variables["DATABASE_SECRET_ARN"]),
        "MasterSecretArn"
    );
    assert_eq!(variables["DATABASE_APP_USER"], "inventory_app");
    assert_eq!(
        imported(&migrate["VpcConfig"]["SecurityGroupIds"][0]),
        "MigrateSecurityGroup"
    );
    // Every API function and job waits for the schema.
    for (binary, function) in functions(&template) {
        if binary != "migrate" && binary != "docs" {
            assert_eq!(function["DependsOn"], "Migrations", "{binary}");
        }
    }
}

/// With the defaults nothing is reserved, so the first deploy succeeds on an account whose quota is 10; an
/// operator who opts in gets a cap on every function that borrows connections, and the caps, at the value the
/// deployment guide suggests, add up to less than the proxy's pool on the default instance class.
#[test]
fn defaults_reserve_nothing_and_a_reservation_fits_the_proxy_pool() {
    // max_connections of Aurora PostgreSQL on db.t4g.medium (Aurora User Guide).
    const T4G_MEDIUM_MAX_CONNECTIONS: i64 = 405;
    const SUGGESTED: i64 = 16;
    let template = template();
    assert_eq!(template["Parameters"]["ReservedConcurrency"]["Default"], 0);
    assert_eq!(
        yaml(&template["Conditions"]["CapConcurrency"]),
        "!Not\n- !Equals\n  - !Ref ReservedConcurrency\n  - 0"
    );
    let data = data();
    assert_eq!(
        data["Parameters"]["DatabaseInstanceClass"]["Default"],
        "db.t4g.medium"
    );
    let pool =
        &data["Resources"]["ProxyTargetGroup"]["Properties"]["ConnectionPoolConfigurationInfo"];
    let budget = T4G_MEDIUM_MAX_CONNECTIONS * pool["MaxConnectionsPercent"].as_i64().unwrap() / 100;
    // Past the pool, a request waits the borrow timeout and answers 503 within its own timeout.
    let borrow = pool["ConnectionBorrowTimeout"].as_i64().unwrap();
    assert!(borrow < template["Globals"]["Function"]["Timeout"].as_i64().unwrap());
    let (mut total, mut functions_capped, mut jobs_capped) = (0, 0, 0);
    for (binary, function) in functions(&template) {
        let properties = effective(&template, &function);
        if binary == "docs" || binary == "migrate" {
            assert!(properties["ReservedConcurrentExecutions"].is_null());
            continue;
        }
        let cap = intrinsic(&properties["ReservedConcurrentExecutions"], "If")
            .as_sequence()
            .unwrap_or_else(|| panic!("{binary} has no concurrency cap"));
        assert_eq!(cap[0], "CapConcurrency", "{binary}");
        assert_eq!(yaml(&cap[2]), "!Ref AWS::NoValue", "{binary}");
        total += match &cap[1] {
            Value::Number(n) => {
                jobs_capped += 1;
                n.as_i64().unwrap()
            }
            other if yaml(other) == "!Ref ReservedConcurrency" => {
                functions_capped += 1;
                SUGGESTED
            }
            other => panic!("{binary}: {}", yaml(other)),
        };
    }
    assert!(total <= budget, "{total} executions for a pool of {budget}");
    // The quota check counts exactly what is reserved.
    let check = &template["Resources"]["ConcurrencyCheck"];
    assert_eq!(check["Condition"], "CapConcurrency");
    assert_eq!(check["Properties"]["Functions"], functions_capped);
    assert_eq!(check["Properties"]["Jobs"], jobs_capped);
    assert_eq!(
        yaml(&template["Resources"]["Migrations"]["Metadata"]),
        "QuotaChecked: !If\n- CapConcurrency\n- !Ref ConcurrencyCheck\n- ''"
    );
}

/// The quota check's own code (the template's inline Python), run with Lambda's answer to GetAccountSettings
/// for accounts of several sizes; its answer to CloudFormation is caught by a local HTTP server.
#[test]
fn a_reservation_the_quota_cannot_hold_fails_naming_the_quota() {
    let template = template();
    let function = &template["Resources"]["ConcurrencyCheckFunction"];
    assert_eq!(function["Condition"], "CapConcurrency");
    assert!(
        function["Properties"]["VpcConfig"].is_null(),
        "it calls Lambda's public API"
    );
    let code = function["Properties"]["InlineCode"].as_str().unwrap();
    let dir = std::env::temp_dir().join(format!("concurrency-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.py"), code).unwrap();
    // boto3's client, answering what Lambda answers for an account with this limit and unreserved share.
    std::fs::write(
        dir.join("boto3.py"),
        "import json, os\n\
         class _Lambda:\n    def get_account_settings(self):\n        return json.loads(os.environ['SETTINGS'])\n\
         def client(name):\n    assert name == 'lambda'\n    return _Lambda()\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("harness.py"),
        r#"import http.server, json, os, sys, threading
import index
answers = []
class Handler(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
event = json.loads(os.environ["EVENT"])
event.update(ResponseURL=f"http://127.0.0.1:{server.server_port}/answer", StackId="arn:aws:cloudformation:us-east-1:123456789012:stack/shop/1", RequestId="r1", LogicalResourceId="ConcurrencyCheck")
index.handler(event, None)
print(json.dumps(answers[0]))
"#,
    )
    .unwrap();
    let run = |event: serde_json::Value, limit: u32, unreserved: u32| -> serde_json::Value {
        let settings = serde_json::json!({ "AccountLimit": {
            "ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": unreserved } });
        let output = std::process::Command::new("python3")
            .arg(dir.join("harness.py"))
            .env("PYTHONPATH", &dir)
            .env("EVENT", event.to_string())
            .env("SETTINGS", settings.to_string())
            .output()
            .expect("python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let properties = |reserved: u32| serde_json::json!({ "Reserved": reserved.to_string(), "Functions": "14", "Jobs": "3" });
    let create = |reserved: u32| serde_json::json!({ "RequestType": "Create", "ResourceProperties": properties(reserved) });

    // A new account: a quota of 10, all of it unreserved, which Lambda keeps.
    let refused = run(create(20), 10, 10);
    assert_eq!(refused["Status"], "FAILED");
    let reason = refused["Reason"].as_str().unwrap();
    for needed in [
        "L-B99A9384",
        "Concurrent executions",
        "283",
        "is 10",
        "ReservedConcurrency=0",
    ] {
        assert!(reason.contains(needed), "{needed}: {reason}");
    }
    // The usual quota of 1,000: 14 x 20 + 3 = 283 fits beside the 100 kept unreserved; 14 x 65 + 3 = 913 does not.
    assert_eq!(run(create(20), 1000, 1000)["Status"], "SUCCESS");
    assert_eq!(run(create(65), 1000, 1000)["Status"], "FAILED");
    // An update counts what the stack holds already: from 20 to 40 on 1,000 (717 unreserved left).
    let update = serde_json::json!({ "RequestType": "Update", "ResourceProperties": properties(40),
        "OldResourceProperties": properties(20), "PhysicalResourceId": "concurrency-check" });
    assert_eq!(run(update, 1000, 717)["Status"], "SUCCESS");
    // Deleting the check never fails, whatever the account.
    let delete = serde_json::json!({ "RequestType": "Delete", "ResourceProperties": properties(20),
        "PhysicalResourceId": "concurrency-check" });
    assert_eq!(run(delete, 10, 0)["Status"], "SUCCESS");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A missed run is not retried (the next one comes within the period): neither by the scheduler nor by
/// Lambda's asynchronous invocation, whose default retries errors twice and throttles for six hours.
#[test]
fn jobs_run_on_a_schedule_without_retries() {
    let template = template();
    for job in JOBS {
        let function = &functions(&template)[job];
        let events: Vec<&Value> = function["Properties"]["Events"]
            .as_mapping()
            .unwrap()
            .values()
            .collect();
        assert_eq!(events.len(), 1, "{job}");
        let schedule = &events[0]["Properties"];
        assert_eq!(events[0]["Type"], "ScheduleV2", "{job}");
        assert_eq!(schedule["RetryPolicy"]["MaximumRetryAttempts"], 0, "{job}");
        assert_eq!(
            schedule["RetryPolicy"]["MaximumEventAgeInSeconds"], 60,
            "{job}"
        );
        let invoke = &function["Properties"]["EventInvokeConfig"];
        assert_eq!(invoke["MaximumRetryAttempts"], 0, "{job}");
        assert_eq!(invoke["MaximumEventAgeInSeconds"], 60, "{job}");
    }
    // The publisher ends before the next minute's run starts.
    let publisher = &functions(&template)["publish-events"]["Properties"];
    let timeout = publisher["Timeout"].as_i64().unwrap();
    let deadline: i64 = publisher["Environment"]["Variables"]["REQUEST_TIMEOUT_MS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(deadline < timeout * 1000 && timeout < 60);
}

#[test]
fn every_function_that_uses_the_database_has_its_errors_watched() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let watched: BTreeSet<String> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .flat_map(|alarm| {
            alarm["Properties"]["Metrics"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|m| m["MetricStat"]["Metric"]["MetricName"] == "Errors")
        .map(|m| {
            let dimension = &m["MetricStat"]["Metric"]["Dimensions"][0];
            assert_eq!(dimension["Name"], "FunctionName");
            intrinsic(&dimension["Value"], "Ref")
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let using_database: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .filter(|(_, r)| {
            yaml(&r["Properties"]["Role"]).contains("FunctionRole")
                || yaml(&r["Properties"]["Role"]).contains("PublisherRole")
        })
        .map(|(id, _)| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(using_database.len(), 22, "{using_database:?}");
    let missed: Vec<&String> = using_database.difference(&watched).collect();
    assert!(missed.is_empty(), "no alarm reads the errors of {missed:?}");
}

/// Evaluates the intrinsic functions that names are made of, for one stack.
struct Stack {
    name: String,
    id: String,
}

impl Stack {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            id: format!(
                "arn:aws:cloudformation:us-east-1:123456789012:stack/{name}/0f1e2d3c-4b5a-6978-8a9b-acbdcedf0123"
            ),
        }
    }

    fn reference(&self, name: &str, variables: &BTreeMap<String, String>) -> String {
        match name {
            "AWS::StackName" => self.name.clone(),
            "AWS::StackId" => self.id.clone(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::Region" => "us-east-1".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            other => variables.get(other).cloned().unwrap_or_else(|| {
                panic!("a name made of {other}, which is not known at deploy time")
            }),
        }
    }

    fn eval(&self, value: &Value) -> Vec<String> {
        match value {
            Value::String(text) => vec![text.clone()],
            Value::Sequence(items) => items.iter().flat_map(|v| self.eval(v)).collect(),
            Value::Tagged(tagged) => {
                let TaggedValue { tag, value } = tagged.as_ref();
                match tag.to_string().trim_start_matches('!') {
                    "Ref" => vec![self.reference(value.as_str().unwrap(), &BTreeMap::new())],
                    "Sub" => {
                        let (text, variables) = match value {
                            Value::String(text) => (text.as_str(), BTreeMap::new()),
                            Value::Sequence(args) => (
                                args[0].as_str().unwrap(),
                                args[1]
                                    .as_mapping()
                                    .unwrap()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.as_str().unwrap().to_owned(), self.eval(v).concat())
                                    })
                                    .collect(),
                            ),
                            other => panic!("!Sub {}", yaml(other)),
                        };
                        let mut out = String::new();
                        let mut rest = text;
                        while let Some(start) = rest.find("${") {
                            out.push_str(&rest[..start]);
                            let end = rest[start..].find('}').unwrap() + start;
                            out.push_str(&self.reference(&rest[start + 2..end], &variables));
                            rest = &rest[end + 1..];
                        }
                        out.push_str(rest);
                        vec![out]
                    }
                    "Split" => {
                        let args = value.as_sequence().unwrap();
                        let on = args[0].as_str().unwrap();
                        self.eval(&args[1])
                            .concat()
                            .split(on)
                            .map(str::to_owned)
                            .collect()
                    }
                    "Select" => {
                        let args = value.as_sequence().unwrap();
                        let index = args[0].as_u64().unwrap() as usize;
                        vec![self.eval(&args[1])[index].clone()]
                    }
                    other => panic!("!{other} in a name"),
                }
            }
            other => panic!("{} in a name", yaml(other)),
        }
    }
}

/// A service's rule for a name: the longest it may be, and whether a name is valid.
type Rule = (usize, fn(&str) -> bool);

fn rules() -> BTreeMap<(&'static str, &'static str), Rule> {
    fn alnum_hyphen(s: &str) -> bool {
        s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }
    BTreeMap::from([
        // RDS: a letter first, letters, digits and single hyphens, no hyphen at the end.
        (
            ("AWS::RDS::DBProxy", "DBProxyName"),
            (
                63,
                (|s: &str| {
                    s.starts_with(|c: char| c.is_ascii_alphabetic())
                        && alnum_hyphen(s)
                        && !s.contains("--")
                        && !s.ends_with('-')
                }) as fn(&str) -> bool,
            ),
        ),
        // Cognito: lower-case letters, digits and hyphens, not at either end, and none of the reserved words.
        (
            ("AWS::Cognito::UserPoolDomain", "Domain"),
            (63, |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !s.starts_with('-')
                    && !s.ends_with('-')
                    && !["aws", "amazon", "cognito"].iter().any(|w| s.contains(w))
            }),
        ),
        (
            ("AWS::Cognito::UserPool", "UserPoolName"),
            (128, |s: &str| {
                s.chars().all(|c| {
                    c.is_alphanumeric() || c == '_' || c.is_whitespace() || "+=,.@-".contains(c)
                })
            }),
        ),
        (
            ("AWS::Cognito::UserPoolClient", "ClientName"),
            (128, |s: &str| {
                s.chars().all(|c| {
                    c.is_alphanumeric() || c == '_' || c.is_whitespace() || "+=,.@-".contains(c)
                })
            }),
        ),
        (
            ("AWS::Events::EventBus", "Name"),
            (256, |s: &str| {
                s != "default"
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            }),
        ),
        (
            ("AWS::Logs::LogGroup", "LogGroupName"),
            (512, |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
            }),
        ),
        (
            ("ScheduleV2", "Name"),
            (64, |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            }),
        ),
        // Export names: letters, digits, colons and hyphens.
        (
            ("Export", "Name"),
            (255, |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":-".contains(c))
            }),
        ),
    ])
}

/// Every name a rule applies to in the two templates, with the rule's key.
fn named(templates: &[Value]) -> Vec<((&'static str, &'static str), Value)> {
    let rules = rules();
    let mut found = Vec::new();
    for template in templates {
        for resource in template["Resources"].as_mapping().unwrap().values() {
            let kind = resource["Type"].as_str().unwrap();
            for (rule_kind, property) in rules.keys() {
                if *rule_kind == kind && !resource["Properties"][*property].is_null() {
                    found.push((
                        (*rule_kind, *property),
                        resource["Properties"][*property].clone(),
                    ));
                }
            }
            for event in resource["Properties"]["Events"]
                .as_mapping()
                .into_iter()
                .flat_map(|m| m.values())
            {
                if event["Type"] == "ScheduleV2" {
                    let name = event["Properties"]["Name"].clone();
                    assert!(
                        !name.is_null(),
                        "a schedule without a name gets a fixed one from SAM"
                    );
                    found.push((("ScheduleV2", "Name"), name));
                }
            }
        }
        for output in template["Outputs"].as_mapping().unwrap().values() {
            if !output["Export"].is_null() {
                found.push((("Export", "Name"), output["Export"]["Name"].clone()));
            }
        }
    }
    found
}

/// Every physical name is derived so that every valid stack name (letters, digits and hyphens, a letter first,
/// at most 128) yields a valid name: upper case, the words Cognito refuses, double hyphens and the longest
/// name included.
#[test]
fn every_name_is_valid_for_every_stack_name() {
    let long = format!("a{}c", "b1-".repeat(42));
    assert_eq!(long.len(), 128);
    let names = named(&[data(), template()]);
    let kinds: BTreeSet<&str> = names.iter().map(|((kind, _), _)| *kind).collect();
    for needed in [
        "AWS::RDS::DBProxy",
        "AWS::Cognito::UserPoolDomain",
        "ScheduleV2",
        "Export",
    ] {
        assert!(kinds.contains(needed), "{needed}");
    }
    let rules = rules();
    for stack_name in [
        "Inventory",
        "shop-aws",
        "a--b",
        "amazon-cognito-shop",
        long.as_str(),
    ] {
        let stack = Stack::new(stack_name);
        for (rule, expression) in &names {
            let (max, valid) = rules[rule];
            let name = stack.eval(expression).concat();
            assert!(
                !name.is_empty() && name.len() <= max && valid(&name),
                "stack {stack_name}: {rule:?} {name:?} ({} characters, at most {max})",
                name.len()
            );
        }
    }
}

/// The deployment guide's cost table adds up: its idle column sums to its total.
#[test]
fn the_cost_table_adds_up() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy.md")).unwrap();
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| part | while idle |"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(table.len() > 5, "the cost table");
    let idle = |row: &str| -> Option<f64> {
        let cell = row.split('|').nth(2)?.trim().trim_matches('*');
        cell.parse().ok()
    };
    let (total_row, rows) = table.split_last().unwrap();
    assert!(total_row.contains("**total**"), "{total_row}");
    let sum: f64 = rows.iter().filter_map(|r| idle(r)).sum();
    let total = idle(total_row).unwrap();
    assert!(
        (sum - total).abs() < 0.005,
        "the rows add up to {sum:.2}, the total says {total:.2}"
    );
}

/// A reviewer reads both stacks in one sitting: together they stay within 900 lines.
#[test]
fn the_templates_stay_short() {
    let lines: usize = ["data.yaml", "template.yaml"]
        .iter()
        .map(|name| {
            std::fs::read_to_string(format!("{}/../{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert!(lines <= 900, "{lines} lines of templates");
}
