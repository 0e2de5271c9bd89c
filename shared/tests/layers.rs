//! The layers: the domain, the ports, the service, the storage adapters, the events, the API's JSON
//! representation and the publisher know nothing of the HTTP edge. A module of theirs that imports `http::` (the
//! crate's own module, not the `http` crate of request types) fails this test.

use std::path::{Path, PathBuf};

/// The modules below the HTTP edge, as paths under `shared/src`: a folder stands for every file in it.
const BELOW_THE_EDGE: [&str; 9] = [
    "domain",
    "ports.rs",
    "service.rs",
    "postgres",
    "memory.rs",
    "events.rs",
    "views.rs",
    "eventbridge.rs",
    "jobs.rs",
];

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .flat_map(|entry| rust_files(&entry.unwrap().path()))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    }
}

/// The lines of `source` that import the crate's `http` module, comments left out.
fn imports_of_the_edge(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    // `crate::http`, `super::http`, `super::super::http`, `inventory::http`.
    for prefix in ["crate::http", "super::http", "inventory::http"] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            if !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                found.push(line_at(&code, at));
            }
        }
    }
    // `use crate::{..., http, ...}` and `use crate::{http::...}`.
    for (at, _) in code.match_indices("crate::{") {
        let group = &code[at..code[at..].find('}').map_or(code.len(), |end| at + end)];
        if group
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "http")
        {
            found.push(line_at(&code, at));
        }
    }
    found
}

fn line_at(code: &str, at: usize) -> String {
    let start = code[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = code[at..].find('\n').map_or(code.len(), |i| at + i);
    code[start..end].trim().to_owned()
}

#[test]
fn nothing_below_the_http_edge_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let mut offences = Vec::new();
    for module in BELOW_THE_EDGE {
        let path = src.join(module);
        assert!(path.exists(), "{module} is gone: update the list");
        for file in rust_files(&path) {
            checked += 1;
            let source = std::fs::read_to_string(&file).unwrap();
            for line in imports_of_the_edge(&source) {
                offences.push(format!("{}: {line}", file.display()));
            }
        }
    }
    assert!(checked >= 25, "only {checked} files checked");
    assert!(
        offences.is_empty(),
        "these import the HTTP edge:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_check_sees_every_way_of_importing_the_edge() {
    for import in [
        "use crate::http::dto::ProductView;",
        "use crate::http;",
        "use crate::{domain::Error, http::Auth};",
        "use crate::{\n    domain,\n    http,\n};",
        "use super::http::routes;",
        "    let x = crate::http::ROUTES;",
    ] {
        assert_eq!(imports_of_the_edge(import).len(), 1, "{import}");
    }
    for fine in [
        "let request: http::Request<Vec<u8>> = todo!();",
        "use aws_sigv4::http_request::sign;",
        "use crate::httpish;",
        "// use crate::http::dto;",
        "use lambda_http::Body;",
    ] {
        assert!(imports_of_the_edge(fine).is_empty(), "{fine}");
    }
}
