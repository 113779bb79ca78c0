//! The architecture invariants of ARCHITECTURE.md that a test can hold the tree to:
//! which crate may depend on which, and where the one gate path lives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every crate's directory name and its normal (non-dev) dependencies.
fn crates() -> Vec<(String, BTreeSet<String>)> {
    let root = workspace().join("crates");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        let deps = manifest
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        found.push((name, deps));
    }
    found.sort();
    assert!(
        found.len() >= 10,
        "the crates were not found under {root:?}"
    );
    found
}

fn depends(crate_name: &str, dependency: &str) -> bool {
    crates()
        .iter()
        .any(|(name, deps)| name == crate_name && deps.contains(dependency))
}

#[test]
fn the_core_does_no_io() {
    let io = [
        "tokio",
        "rusqlite",
        "reqwest",
        "lettre",
        "axum",
        "hyper",
        "async-trait",
        "tracing",
    ];
    for dependency in io {
        assert!(
            !depends("core", dependency),
            "unavoce-core depends on {dependency}"
        );
    }
    // Nor does its code reach for the file system, the network or the clock.
    for file in rust_files(&workspace().join("crates/core/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for forbidden in ["std::fs", "std::net", "Timestamp::now()", "SystemTime::now"] {
            let outside_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
            assert!(
                !outside_tests.contains(forbidden),
                "{} uses {forbidden}",
                file.display()
            );
        }
    }
}

#[test]
fn only_the_store_knows_sql_and_only_the_edges_know_http() {
    for (name, deps) in crates() {
        // The two stores (PostgreSQL's reads a SQLite data folder to move it); the
        // tests' kit looks into a test database; the cluster benchmark measures
        // PostgreSQL itself (its raw COPY baseline, lock waits, table sizes).
        if !matches!(name.as_str(), "store" | "store-postgres") {
            assert!(!deps.contains("rusqlite"), "{name} depends on rusqlite");
        }
        if !matches!(name.as_str(), "store-postgres" | "testkit" | "bench") {
            assert!(
                !deps.contains("tokio-postgres"),
                "{name} depends on tokio-postgres"
            );
        }
        // The edges: the HTTP server, the binary, and the benchmarks' local sinks.
        if !matches!(name.as_str(), "server" | "cli" | "bench") {
            assert!(!deps.contains("axum"), "{name} depends on axum");
        }
    }
}

#[test]
fn the_stages_depend_one_way() {
    // core <- store <- intake <- projections <- engagement <- delivery <- platform
    //   <- demo <- server <- bench <- cli
    let order = [
        "core",
        "store",
        "intake",
        "projections",
        "engagement",
        "delivery",
        "platform",
        "demo",
        "server",
        "bench",
        "cli",
    ];
    for (i, name) in order.iter().enumerate() {
        for later in &order[i + 1..] {
            let package = if *later == "cli" {
                "unavoce".to_string()
            } else {
                format!("unavoce-{later}")
            };
            assert!(
                !depends(name, &package),
                "{name} depends on {package}, which comes after it"
            );
        }
    } // Beside the stages: the PostgreSQL store, and the bus between nodes, which knows
    // only the stores (the binary wires it to the platform).
    for beside in ["store-postgres", "cluster"] {
        for later in &order[2..] {
            let package = if *later == "cli" {
                "unavoce".to_string()
            } else {
                format!("unavoce-{later}")
            };
            assert!(!depends(beside, &package), "{beside} depends on {package}");
        }
    }
}

#[test]
fn every_message_to_a_person_is_decided_through_the_one_gate_path() {
    let gate = workspace().join("crates/engagement/src/gate.rs");
    let mut callers = Vec::new();
    for file in rust_files(&workspace().join("crates")) {
        let this_test = file.ends_with("cli/tests/architecture.rs");
        if file.starts_with(workspace().join("crates/core")) || file == gate || this_test {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        if imports_decide(&text) {
            callers.push(file.display().to_string());
        }
    }
    assert!(
        callers.is_empty(),
        "policy::decide called outside gate.rs: {callers:?}"
    );
    // The gate decides under the policies in force when it is asked (a reload may
    // replace them), taken once for the whole decision.
    let text = std::fs::read_to_string(&gate).unwrap();
    assert!(text.contains("let policies = self.policies.get();"));
    assert!(text.contains("decide(&policies"));
}

#[test]
fn the_platforms_own_events_are_named_only_in_their_vocabulary() {
    let names = [
        "\"Consent Given\"",
        "\"Consent Withdrawn\"",
        "\"Segment Entered\"",
        "\"Segment Exited\"",
        "\"Department Notified\"",
        "\"Message Sent\"",
        "\"Message Delivered\"",
        "\"Message Read\"",
        "\"Message Opened\"",
        "\"Message Clicked\"",
        "\"Message Replied\"",
        "\"Message Failed\"",
        "\"Message Bounced\"",
    ];
    let vocabulary = workspace().join("crates/core/src/platform_events.rs");
    // Customers' own statements in generated data are not the platform's.
    let generated =
        ["crates/demo", "crates/synthetic", "crates/bench"].map(|c| workspace().join(c));
    let mut spelled = Vec::new();
    for file in rust_files(&workspace().join("crates")) {
        let is_test =
            file.components().any(|c| c.as_os_str() == "tests") || file.ends_with("tests.rs");
        if file == vocabulary || is_test || generated.iter().any(|g| file.starts_with(g)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for name in names {
            if code.contains(name) {
                spelled.push(format!("{} spells {name}", file.display()));
            }
        }
    }
    assert!(spelled.is_empty(), "{spelled:#?}");
}

#[test]
fn every_error_a_log_line_prints_is_redacted() {
    let mut raw = Vec::new();
    for file in rust_files(&workspace().join("crates")) {
        if file.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some((_, after)) = line.split_once("error = %")
                && !after.starts_with("Redacted(")
            {
                raw.push(format!("{}:{}", file.display(), n + 1));
            }
        }
    }
    assert!(
        raw.is_empty(),
        "log errors through unavoce_core::redact::Redacted: {raw:#?}"
    );
}

/// Whether the code names `policy::decide`, or imports `decide` from `policy`.
fn imports_decide(text: &str) -> bool {
    text.contains("policy::decide(")
        || text.split("policy::{").skip(1).any(|list| {
            list.split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .any(|item| item.trim() == "decide")
        })
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("target") && !path.ends_with("node_modules") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}
