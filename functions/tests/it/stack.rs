//! The docker compose stack, checked without a Docker engine: the compose file, the Dockerfile and the
//! README must agree with each other and with the code (binaries, port, environment, routes).

use std::collections::BTreeSet;

use serde_norway::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).unwrap()
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    &compose["services"][name]
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_stack_is_a_database_a_migration_the_api_and_the_jobs() {
    let compose = compose();
    let names: BTreeSet<&str> = compose["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["db", "migrate", "api", "purge", "expire"])
    );
    for (name, command) in [
        ("purge", "./target/debug/purge-expired --every 3600"),
        ("expire", "./target/debug/expire-orders --every 60"),
    ] {
        let job = service(&compose, name);
        assert_eq!(
            job["depends_on"]["migrate"]["condition"],
            "service_completed_successfully"
        );
        assert_eq!(strings(&job["command"]).join(" "), command);
    }
}

#[test]
fn the_database_is_healthchecked_and_keeps_its_data_in_a_named_volume() {
    let compose = compose();
    let db = service(&compose, "db");
    assert!(
        db["image"].as_str().unwrap().starts_with("postgres:"),
        "an official Postgres image"
    );
    let check = strings(&db["healthcheck"]["test"]).join(" ");
    assert!(check.contains("pg_isready"), "{check}");
    let database = db["environment"]["POSTGRES_DB"].as_str().unwrap();
    assert!(
        check.contains(database),
        "the healthcheck asks for the database the stack uses"
    );
    let volume = strings(&db["volumes"])
        .into_iter()
        .find(|v| v.ends_with(":/var/lib/postgresql/data"))
        .unwrap();
    let name = volume.split(':').next().unwrap();
    assert!(
        compose["volumes"].as_mapping().unwrap().contains_key(name),
        "{name} is a named volume"
    );
    assert!(
        db.get("ports").is_none(),
        "the database is not published outside the stack"
    );
}

#[test]
fn migrations_run_once_the_database_is_healthy_and_the_api_waits_for_them() {
    let compose = compose();
    let migrate = service(&compose, "migrate");
    let api = service(&compose, "api");
    assert_eq!(migrate["depends_on"]["db"]["condition"], "service_healthy");
    assert_eq!(
        api["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(migrate["restart"], "no");
    let command = strings(&migrate["command"]).join(" ");
    let functions: toml::Table = read("functions/Cargo.toml").parse().unwrap();
    let has_migrate = functions["bin"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["name"].as_str() == Some("migrate"));
    assert!(
        has_migrate && command.ends_with("target/debug/migrate"),
        "{command}"
    );
}

#[test]
fn both_services_use_the_stack_database() {
    let compose = compose();
    let db = service(&compose, "db");
    let database = db["environment"]["POSTGRES_DB"].as_str().unwrap();
    for name in ["migrate", "api", "purge"] {
        let url = service(&compose, name)["environment"]["DATABASE_URL"]
            .as_str()
            .unwrap();
        assert_eq!(
            url,
            format!("postgres://postgres@db:5432/{database}"),
            "{name}"
        );
        let config = inventory::config::Config::from_lookup(|var| {
            (var == "DATABASE_URL").then(|| url.to_owned())
        });
        assert!(
            config.is_ok(),
            "{name}: the functions accept its configuration"
        );
    }
}

#[test]
fn the_api_serves_with_local_auth_and_shares_its_key_with_the_host() {
    let compose = compose();
    let api = service(&compose, "api");
    let env = &api["environment"];
    let auth =
        inventory::config::AuthConfig::from_lookup(|var| env[var].as_str().map(str::to_owned))
            .unwrap();
    let inventory::config::AuthConfig::Local { key_file, .. } = auth else {
        panic!("the stack serves with AUTH_MODE=local: {auth:?}");
    };
    assert!(key_file.starts_with("/app/.auth"), "{key_file:?}");
    assert_eq!(strings(&api["volumes"]), ["./.auth:/app/.auth"]);
    // The key stays out of git; the folder is in it, so that it belongs to whoever cloned the repository.
    let ignore = read(".gitignore");
    assert!(
        ignore.lines().any(|l| l == "/.auth/*"),
        "the key stays out of git"
    );
    assert!(ignore.lines().any(|l| l == "!/.auth/.gitkeep"));
    assert!(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.auth/.gitkeep")).exists()
    );
    assert!(
        read(".dockerignore").lines().any(|l| l == ".auth"),
        "and out of the image"
    );
}

#[test]
fn the_api_is_published_on_the_port_cargo_lambda_watch_serves() {
    let compose = compose();
    let api = service(&compose, "api");
    // This machine only: the emulator's Runtime API and /lambda-url/ routes share the port.
    assert_eq!(strings(&api["ports"]), ["127.0.0.1:9000:9000"]);
    let dockerfile = read("Dockerfile");
    let cmd = dockerfile.lines().find(|l| l.starts_with("CMD")).unwrap();
    for part in [
        "\"lambda\", \"watch\"",
        "\"--invoke-address\", \"0.0.0.0\"",
        "\"--invoke-port\", \"9000\"",
        "--ignore-changes",
    ] {
        assert!(cmd.contains(part), "the image serves with {part}: {cmd}");
    }
    assert!(dockerfile.contains("EXPOSE 9000"));
    let check = strings(&api["healthcheck"]["test"]).join(" ");
    assert!(check.contains("127.0.0.1:9000/health"), "{check}");
    assert!(inventory::http::ROUTES.iter().any(|r| r.path == "/health"));
}

#[test]
fn the_image_builds_from_official_images_and_registries_only() {
    let dockerfile = read("Dockerfile");
    let from: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM"))
        .collect();
    assert_eq!(from.len(), 1);
    assert!(from[0].starts_with("FROM rust:"), "{}", from[0]);
    let lib = read("scripts/lib.sh");
    let version = lib
        .lines()
        .find_map(|l| l.strip_prefix("CARGO_LAMBDA_VERSION="))
        .unwrap();
    assert!(
        dockerfile.contains(&format!("cargo-lambda=={version}")),
        "the image pins the cargo-lambda the scripts use"
    );
    for line in dockerfile.lines() {
        assert!(
            !line.contains("curl ") || line.contains("apt-get"),
            "nothing is downloaded outside a registry: {line}"
        );
        assert!(!line.contains("wget"), "{line}");
    }
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "the build context leaves out target/"
    );
}

#[test]
fn the_readme_starts_the_stack_and_names_its_addresses() {
    let readme = read("README.md");
    assert!(readme.contains("docker compose up"));
    assert!(readme.contains("http://localhost:9000/swagger/"));
    assert!(readme.contains("http://localhost:9000/openapi.json"));
}

/// One build of one image for every service of the project, never pulled from a registry; its dependencies in
/// a layer of their own, ahead of the sources; no ziglang (only `cargo lambda build` uses it).
#[test]
fn one_image_is_built_once_with_its_dependencies_cached_apart() {
    let compose = compose();
    let mut builds = Vec::new();
    for name in ["migrate", "api", "purge", "expire"] {
        let service = service(&compose, name);
        assert_eq!(service["image"], "inventory-local", "{name}");
        if service["build"].is_null() {
            assert_eq!(
                service["pull_policy"], "never",
                "{name} waits for the build"
            );
        } else {
            assert_eq!(service["pull_policy"], "build", "{name}");
            builds.push(name);
        }
    }
    assert_eq!(builds, ["migrate"]);
    let dockerfile = read("Dockerfile");
    let manifests = dockerfile.find("COPY Cargo.toml Cargo.lock").unwrap();
    let sources = dockerfile.find("COPY . .").unwrap();
    let first_build = dockerfile.find("cargo build --bins").unwrap();
    assert!(
        manifests < first_build && first_build < sources,
        "dependencies first"
    );
    assert!(
        dockerfile.contains("--no-deps"),
        "cargo-lambda without ziglang"
    );
}

/// A job looping with `--every` (as the compose stack runs them, as PID 1) stops at once on SIGTERM, with exit
/// status 0, instead of waiting out the stop timeout to be killed.
#[test]
fn a_job_stops_at_once_on_sigterm() {
    // Bounded in wall-clock time: alone among the heavy tests.
    let _heavy = crate::HEAVY.blocking_lock();
    let mut job = std::process::Command::new(env!("CARGO_BIN_EXE_expire-orders"))
        .args(["--every", "3600"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .env("DATABASE_ACQUIRE_TIMEOUT_MS", "200")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &job.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < std::time::Duration::from_secs(3),
            "still running 3 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// The README's scope table is the route table's: each scope with exactly the routes that need it.
#[test]
fn the_readme_scope_table_is_the_route_table() {
    use inventory::http::ROUTES;
    use inventory::http::routes::Scope;
    let readme = read("README.md");
    let rows: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| scope | routes |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(rows.len(), Scope::ALL.len());
    for scope in Scope::ALL {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{}` |", scope.as_str())))
            .unwrap_or_else(|| panic!("{} has no row", scope.as_str()));
        let listed: Vec<String> = row
            .split('`')
            .skip(3)
            .step_by(2)
            .filter(|r| r.contains(' ') && r.contains('/'))
            .map(str::to_owned)
            .collect();
        let needed: Vec<String> = ROUTES
            .iter()
            .filter(|r| r.endpoint.scope() == Some(scope))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(listed, needed, "{}", scope.as_str());
    }
}
