//! The spec trail stays right: every `§7.1 step N (name)` / `§7.2 step N
//! (name)` in the workspace names a step of its table in
//! `assertd_verify::spec` by its number and its name, no comment names a
//! step without its section, and the crate docs show the tables as the data
//! renders them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assertd_verify::spec::{PROCEDURES, Procedure};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// Every text file a step reference may live in.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "node_modules" | ".git" | "corpus" | "artifacts") {
                    walk(&path, out);
                }
            } else if matches!(
                path.extension().and_then(|x| x.to_str()),
                Some("rs" | "md" | "proto" | "py" | "sh" | "js" | "html" | "yaml" | "toml")
            ) {
                out.push(path);
            }
        }
    }
    let root = workspace();
    let mut out = Vec::new();
    for dir in ["crates", "docs", "fuzz", "examples", "loadtest", "benches", "proto", "helm", "scripts"] {
        walk(&root.join(dir), &mut out);
    }
    for e in std::fs::read_dir(&root).expect("the workspace root").flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            out.push(e.path());
        }
    }
    out
}

/// The file's text with comment markers and line breaks folded away, so a
/// reference that wraps across comment lines reads as one.
fn folded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_start();
        let t = ["//!", "///", "//", "#", "* ", "*"].iter().find_map(|m| t.strip_prefix(m)).unwrap_or(t);
        out.push_str(t.trim());
        out.push(' ');
    }
    out
}

struct Reference {
    procedure: &'static Procedure,
    first: u8,
    last: u8,
}

/// Parses `step N` / `steps N–M` at the start of `s`: the range and the
/// length read.
fn steps(s: &str) -> Option<(u8, u8, usize)> {
    let rest = s.strip_prefix("steps ").or_else(|| s.strip_prefix("step "))?;
    let head = s.len() - rest.len();
    let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    let first: u8 = rest[..n].parse().ok()?;
    let after = &rest[n..];
    for dash in ["–", "-"] {
        if let Some(more) = after.strip_prefix(dash) {
            let m = digits(more);
            if m > 0 {
                return Some((first, more[..m].parse().ok()?, head + n + dash.len() + m));
            }
        }
    }
    Some((first, first, head + n))
}

/// What the bracket after a reference must say.
fn expected(r: &Reference) -> Result<String, String> {
    let names: Option<Vec<&str>> = (r.first..=r.last).map(|n| r.procedure.step(n).map(|s| s.name)).collect();
    let names = names.ok_or_else(|| format!("§{} has no step {}–{}", r.procedure.section, r.first, r.last))?;
    Ok(if names.len() > 3 { format!("{} … {}", names[0], names[names.len() - 1]) } else { names.join(", ") })
}

/// Every mistake in one file's text.
fn check(text: &str) -> Vec<String> {
    let text = folded(text);
    let mut errors = Vec::new();
    let mut covered = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find("§7.") {
        let start = at + i;
        let mut pos = start;
        let mut chain = Vec::new();
        // A chain: §7.x step N [/ §7.y step M]…
        loop {
            let s = &text[pos..];
            let Some(procedure) = PROCEDURES.iter().find(|p| s.starts_with(&format!("§{} ", p.section))) else { break };
            let after = pos + "§7.x ".len();
            let Some((first, last, len)) = steps(&text[after..]) else { break };
            chain.push(Reference { procedure, first, last });
            pos = after + len;
            if text[pos..].starts_with(" / §7.") {
                pos += " / ".len();
            } else {
                break;
            }
        }
        if chain.is_empty() {
            at = start + "§7.".len();
            continue;
        }
        at = pos;
        covered.push(start..pos);
        let end = (pos + 40).min(text.len());
        let quote = &text[start..(start..=end).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(start)];
        let Some(bracket) = text[pos..].strip_prefix(" (") else {
            errors.push(format!("{quote:?}: name the step in brackets after its number"));
            continue;
        };
        let Some(close) = bracket.find(')') else {
            errors.push(format!("{quote:?}: the bracket is not closed"));
            continue;
        };
        let said = &bracket[..close];
        for r in &chain {
            match expected(r) {
                Err(e) => errors.push(format!("{quote:?}: {e}")),
                Ok(want) if want != said => errors.push(format!(
                    "{quote:?}: §{} step(s) {}–{} are ({want}) in the spec at {}, not ({said})",
                    r.procedure.section,
                    r.first,
                    r.last,
                    assertd_verify::spec::COMMIT
                )),
                Ok(_) => {}
            }
        }
    }
    // A step number without its section cannot be checked: refused, except
    // DESIGN.md's own list.
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    while let Some(i) = lower[at..].find("step") {
        let start = at + i;
        at = start + 4;
        if steps(&lower[start..]).is_none()
            || covered.iter().any(|c| c.contains(&start))
            || text[..start].ends_with("DESIGN.md, ")
            || (start > 0 && text.as_bytes()[start - 1].is_ascii_alphanumeric())
        {
            continue;
        }
        let end = (start + 40).min(text.len());
        let end = (start..=end).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(start);
        errors.push(format!("{:?}: say which section (`§7.1 step N (name)` or `§7.2 step N (name)`)", &text[start..end]));
    }
    errors
}

#[test]
fn every_step_reference_names_its_step() {
    let root = workspace();
    let mut errors = Vec::new();
    let files = sources();
    assert!(files.len() > 100, "the walk found only {} files under {}", files.len(), root.display());
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        // This file and the table's own module describe the convention.
        if path.ends_with("tests/spec_trail.rs") || path.ends_with("assertd-verify/src/spec.rs") {
            continue;
        }
        for e in check(&text) {
            errors.push(format!("{}: {e}", path.strip_prefix(&root).unwrap_or(&path).display()));
        }
    }
    assert!(errors.is_empty(), "{} wrong step references:\n{}", errors.len(), errors.join("\n"));
}

#[test]
fn the_checker_catches_a_wrong_number_and_a_missing_name() {
    assert!(check("// §7.2 step 21 (signature): sig over authData ‖ hash").is_empty());
    assert!(check("// §7.2 steps 13–14 (crossOrigin, topOrigin) / §7.1 steps 10–11\n// (crossOrigin, topOrigin) are policy").is_empty());
    assert!(check("//! §7.1 steps 5–25 (UTF-8 decode … credentialId length)").is_empty());
    assert_eq!(check("// §7.2 step 22 (signature)").len(), 1, "a number one off");
    assert_eq!(check("// §7.2 step 21: the signature").len(), 1, "no name");
    assert_eq!(check("// §7.1 step 30 (store)").len(), 1, "no such step");
    assert_eq!(check("// the signature (step 21)").len(), 1, "no section");
    assert!(check("// step up, stepping, steps of DESIGN.md, step 4").is_empty());
}

/// The crate docs show each table between `//! <!-- §7.x table -->` and
/// `//! <!-- end of §7.x table -->`, as the data renders it. With
/// `BLESS_SPEC_TRAIL=1` the test writes them instead of comparing.
#[test]
fn the_crate_docs_show_the_tables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let lib = std::fs::read_to_string(&path).expect("lib.rs");
    let mut blessed = lib.clone();
    for p in PROCEDURES {
        let (open, close) = (format!("//! <!-- §{} table -->\n", p.section), format!("//! <!-- end of §{} table -->", p.section));
        let start = blessed.find(&open).unwrap_or_else(|| panic!("src/lib.rs has no {open:?}")) + open.len();
        let end = start + blessed[start..].find(&close).unwrap_or_else(|| panic!("src/lib.rs has no {close:?}"));
        blessed.replace_range(start..end, &p.render_doc());
    }
    if std::env::var_os("BLESS_SPEC_TRAIL").is_some() {
        std::fs::write(&path, &blessed).expect("write lib.rs");
    }
    assert!(lib == blessed, "src/lib.rs must show the tables as `assertd_verify::spec` renders them (BLESS_SPEC_TRAIL=1 writes them)");
}
