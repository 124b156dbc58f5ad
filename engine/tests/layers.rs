//! Issue 14: the engine's modules are layers that import only downwards. Each module may use
//! the modules listed before it in `LAYERS` (and itself); `lib.rs` and `error.rs`, the facade,
//! sit on top. A `crate::<module>` path that points up the list fails this test.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom first: the order data flows through the engine (see `src/lib.rs`).
const LAYERS: &[&str] = &[
    "report", "source", "project", "render", "graph", "compile", "session", "storage", "audit",
    "check", "execute", "ops", "docs",
];

/// The crate's top-level modules (or root items) that the code of `text` names.
fn imported(text: &str) -> BTreeSet<String> {
    // Unit tests may reach anywhere.
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                found.insert(
                    item.trim()
                        .split("::")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// Every back edge under `src`: (file, the module it should not use).
fn back_edges(src: &Path) -> Vec<(String, String)> {
    let mut edges = Vec::new();
    for entry in walkdir::WalkDir::new(src).sort_by_file_name() {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(src).unwrap();
        let Some(module) = relative.components().next().map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        }) else {
            continue;
        };
        let rust = entry.path().extension().is_some_and(|e| e == "rs");
        if !entry.file_type().is_file() || !rust || module == "lib" || module == "error" {
            continue;
        }
        let Some(layer) = LAYERS.iter().position(|l| *l == module) else {
            edges.push((
                relative.display().to_string(),
                "(a module missing from LAYERS)".into(),
            ));
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for used in imported(&text) {
            let allowed = LAYERS[..=layer].contains(&used.as_str());
            if !allowed {
                edges.push((relative.display().to_string(), used));
            }
        }
    }
    edges
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_eq!(back_edges(&src), Vec::<(String, String)>::new());
}

#[test]
fn a_back_edge_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("report")).unwrap();
    std::fs::create_dir_all(dir.path().join("storage")).unwrap();
    // The bottom layer reaching up to execute, and storage reaching the crate root.
    std::fs::write(
        dir.path().join("report/mod.rs"),
        "use crate::execute::ModelError;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("storage/mod.rs"),
        "use crate::{session::Stores, Prepared};\nfn f() { crate::source::quote_identifier(\"x\"); }\n",
    )
    .unwrap();
    assert_eq!(
        back_edges(dir.path()),
        [
            ("report/mod.rs".to_string(), "execute".to_string()),
            ("storage/mod.rs".to_string(), "Prepared".to_string()),
        ]
    );
}
