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
    "aws",
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

/// The sibling modules of one folder `file` (a path under `shared/src`) names: `super::x` from a file in the
/// folder, and `crate::<folder path>::x` from anywhere, comments and `#[cfg(test)]` modules left out.
fn siblings_named(source: &str, folder: &str, siblings: &[String]) -> Vec<String> {
    let code: String = source
        .split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let crate_prefix = if folder.is_empty() {
        "crate::".to_owned()
    } else {
        format!("crate::{}::", folder.replace('/', "::"))
    };
    let mut named = Vec::new();
    for prefix in ["super::".to_owned(), crate_prefix] {
        for (at, _) in code.match_indices(&prefix) {
            let rest = &code[at + prefix.len()..];
            // `super::{a, b::c}` names a and b.
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                group
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or("").trim())
                    .collect()
            } else {
                vec![
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or(""),
                ]
            };
            for name in names {
                if siblings.iter().any(|s| s == name) && !named.iter().any(|n| n == name) {
                    named.push(name.to_owned());
                }
            }
        }
    }
    named
}

/// No two modules of one folder import each other, directly or round a circle: each folder's modules form
/// layers, so a module can be read knowing only those below it. (`mod.rs` re-exports its children and is left
/// out; the top-level files of `src` count as one folder.)
#[test]
fn no_folder_has_an_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut folders = vec![String::new()];
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            folders.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let mut circles = Vec::new();
    for folder in &folders {
        let dir = src.join(folder);
        let siblings: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "rs")
                    && !p.ends_with("mod.rs")
                    && !p.ends_with("lib.rs")
            })
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        let edges: Vec<(String, Vec<String>)> = siblings
            .iter()
            .map(|module| {
                let source = std::fs::read_to_string(dir.join(format!("{module}.rs"))).unwrap();
                // From a top-level file, `super::` is the crate, so `super::x` names a sibling too.
                let mut named = siblings_named(&source, folder, &siblings);
                named.retain(|n| n != module);
                (module.clone(), named)
            })
            .collect();
        // Depth-first search for a path back to the start.
        for (start, _) in &edges {
            let mut stack = vec![vec![start.clone()]];
            while let Some(path) = stack.pop() {
                let last = path.last().unwrap();
                let next = &edges.iter().find(|(m, _)| m == last).unwrap().1;
                for n in next {
                    if n == start {
                        let mut circle = path.clone();
                        circle.push(n.clone());
                        circles.push(format!("{folder}/: {}", circle.join(" -> ")));
                    } else if !path.contains(n) {
                        let mut longer = path.clone();
                        longer.push(n.clone());
                        stack.push(longer);
                    }
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_check_sees_the_ways_of_naming_a_sibling() {
    let siblings: Vec<String> = ["event", "order", "page"].map(String::from).to_vec();
    for (source, expected) in [
        ("use super::page::{decode, encode};", vec!["page"]),
        ("use super::{order::Order, page};", vec!["order", "page"]),
        ("impl Page<crate::domain::order::Order> {}", vec!["order"]),
        ("// use super::event::EventType;", vec![]),
        (
            "use super::values::X;\n#[cfg(test)]\nmod tests { use super::event::E; }",
            vec![],
        ),
    ] {
        assert_eq!(
            siblings_named(source, "domain", &siblings),
            expected,
            "{source}"
        );
    }
}

/// The variables an operator sets, as the code reads them: every string literal of `shared/src` that names
/// one (by the project's prefixes), comments and tests left out.
fn variables_read_by_the_code() -> std::collections::BTreeSet<String> {
    const PREFIXES: [&str; 11] = [
        "AWS_ENDPOINT_URL",
        "DATABASE_",
        "AUTH_",
        "EVENT_",
        "ORDER_",
        "REQUEST_",
        "DEADLINE_",
        "MAX_BODY",
        "RUST_LOG",
        "AWS_LAMBDA_LOG_FORMAT",
        "AWS_LAMBDA_LOG_LEVEL",
    ];
    let mut found = std::collections::BTreeSet::new();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let code = source.split("#[cfg(test)]").next().unwrap_or("");
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            for literal in line.split('"').skip(1).step_by(2) {
                let name_like = !literal.is_empty()
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if name_like && PREFIXES.iter().any(|p| literal.starts_with(p)) {
                    found.insert(literal.to_owned());
                }
                // A service's endpoint variable is `AWS_ENDPOINT_URL_` and its `endpoint_variable`.
                if name_like && line.contains("endpoint_variable:") {
                    found.insert(format!("AWS_ENDPOINT_URL_{literal}"));
                }
            }
        }
    }
    found
}

/// The variables of the one table, in docs/development.md: the names in the first cell of each row.
fn variables_of_the_table() -> std::collections::BTreeSet<String> {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/development.md"
    ))
    .unwrap();
    let table = &docs[docs
        .find("| variable |")
        .expect("docs/development.md has the table")..];
    table
        .lines()
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .flat_map(|line| {
            let cell = line.split('|').nth(1).unwrap_or("");
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Each variable is documented once, in docs/development.md's table, and the table names only variables the
/// code reads: adding or dropping one without the table fails here.
#[test]
fn the_table_of_variables_is_the_one_the_code_reads() {
    let read = variables_read_by_the_code();
    let documented = variables_of_the_table();
    assert!(read.len() >= 20, "only {read:?}");
    let undocumented: Vec<&String> = read.difference(&documented).collect();
    let unread: Vec<&String> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "read but not in docs/development.md's table: {undocumented:?}; in the table but never read: {unread:?}"
    );
}
