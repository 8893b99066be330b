//! The attestation format registry is the one list: every `Format` has its
//! fuzz target (in `fuzz/Cargo.toml`, `fuzz/fuzz_targets/` and both lists
//! of `fuzz/run.sh`) and its place in the docs, and identifiers match
//! case-sensitively. CONTRIBUTING's "An attestation format" checklist is
//! what this test checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assertd_verify::attestation::Format;
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_format_has_its_fuzz_target_and_docs() {
    let cargo = read("fuzz/Cargo.toml");
    let run = read("fuzz/run.sh");
    let api = read("docs/api.md");
    let configuration = read("docs/configuration.md");
    let roots_row = configuration.lines().find(|l| l.starts_with("| `[[attestation_roots]] format`")).expect("the roots row");
    for f in Format::ALL {
        let target = f.fuzz_target();
        assert!(cargo.contains(&format!("name = \"{target}\"")), "fuzz/Cargo.toml has no [[bin]] {target}");
        let source = read(&format!("fuzz/fuzz_targets/{target}.rs"));
        assert!(source.contains(&format!("common::run(\"{}\"", f.name())), "fuzz/fuzz_targets/{target}.rs does not run {f}");
        assert!(run.matches(&format!("\"{target}\"")).count() == 1, "fuzz/run.sh seeds {target} once");
        let targets_line = run.lines().find(|l| l.starts_with("targets=(")).expect("run.sh's targets");
        assert!(targets_line.split([' ', '(', ')']).any(|t| t == target), "fuzz/run.sh runs {target}");
        assert!(api.contains(&format!("`{}`", f.name())), "docs/api.md names {f}");
        assert_eq!(roots_row.contains(&format!("`{}`", f.name())), f.takes_roots(), "docs/configuration.md's roots row and {f}");
    }
}

#[test]
fn identifiers_match_case_sensitively() {
    for f in Format::ALL {
        assert_eq!(Format::parse(f.name()), Some(f));
        assert_eq!(Format::parse(&f.name().to_uppercase()), None);
    }
    assert_eq!(Format::parse("android-safetynet"), None);
    // Roots anchor a trust path: every format has one but `none`.
    assert_eq!(Format::ALL.iter().filter(|f| !f.takes_roots()).collect::<Vec<_>>(), [&Format::None]);
}
