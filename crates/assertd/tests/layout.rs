//! The house's layout rules, held by a test: handlers and the server's
//! wiring never reach the store past the engine; observability is a leaf
//! (`telemetry` imports nothing of the server crate); no source file grows
//! past 450 lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src(rel: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let mut files = Vec::new();
    if root.is_dir() {
        rust_files(&root, &mut files);
    } else {
        files.push(root);
    }
    files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

#[test]
fn handlers_and_wiring_never_touch_the_store() {
    for rel in
        ["src/service.rs", "src/service", "src/stack.rs", "src/stack", "src/server.rs", "src/server", "src/convert.rs", "src/signals"]
    {
        for (path, text) in src(rel) {
            assert!(!text.contains(".store()"), "{} reaches the store past the engine", path.display());
        }
    }
}

#[test]
fn telemetry_is_a_leaf() {
    for (path, text) in src("src/telemetry") {
        for line in text.lines().filter(|l| l.trim_start().starts_with("use ")) {
            assert!(!line.contains("crate::"), "{}: {line}: telemetry imports nothing of the server crate", path.display());
        }
        assert!(!text.contains("crate::engine") && !text.contains("crate::config"), "{} names the server's modules", path.display());
    }
}

#[test]
fn no_source_file_is_over_450_lines() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&crates).unwrap().flatten() {
        let src = e.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50);
    for f in files {
        let n = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(n <= 450, "{} has {n} lines: split it by concern", f.display());
    }
}
