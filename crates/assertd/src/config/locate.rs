//! Where a dotted key (`relying_parties[1].origins`,
//! `profiles.tier0.risk.deny_at`) is written in a TOML file, so that an
//! error found after parsing can still name its line. Best effort: a key
//! written inside an inline table is reported at the line of the nearest
//! enclosing key that is written on a line of its own.

/// One step of a key path: a name, and the element of an array of tables.
type Segment = (String, Option<usize>);

fn segments(key: &str) -> Vec<Segment> {
    key.split('.')
        .map(|s| match s.split_once('[') {
            Some((name, rest)) => (name.to_owned(), rest.trim_end_matches(']').parse().ok()),
            None => (s.to_owned(), None),
        })
        .collect()
}

/// The 1-based line where `key` (or its nearest written ancestor) is set.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut target = segments(key);
    while !target.is_empty() {
        if let Some(line) = find(text, &target) {
            return Some(line);
        }
        target.pop();
    }
    None
}

fn find(text: &str, target: &[Segment]) -> Option<usize> {
    let mut table: Vec<Segment> = Vec::new();
    let mut arrays: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let n = arrays.entry(name.trim().to_owned()).or_insert(0);
            table = name.split('.').map(|s| (s.trim().to_owned(), None)).collect();
            if let Some(last) = table.last_mut() {
                last.1 = Some(*n);
            }
            *n += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = name.split('.').map(|s| (s.trim().to_owned(), None)).collect();
        } else if let Some((k, _)) = line.split_once('=') {
            let mut full = table.clone();
            full.extend(k.trim().split('.').map(|s| (s.trim().trim_matches('"').to_owned(), None)));
            if full == target {
                return Some(i + 1);
            }
            continue;
        } else {
            continue;
        }
        if table == target {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_tables_arrays_and_inline_tables() {
        let text = "listen = \"x\"\n[limits]\nmax_batch_size = 0\n[[relying_parties]]\nid = \"a\"\n[[relying_parties]]\nid = \"b\"\norigins = []\n[profiles.t0]\nkey_restrictions = { enforced = true }\n[profiles.t0.risk]\ndeny_at = 200\n";
        assert_eq!(line_of(text, "listen"), Some(1));
        assert_eq!(line_of(text, "limits.max_batch_size"), Some(3));
        assert_eq!(line_of(text, "relying_parties[1].origins"), Some(8));
        assert_eq!(line_of(text, "relying_parties[0].origins"), Some(4));
        assert_eq!(line_of(text, "profiles.t0.key_restrictions.aaguids[0]"), Some(10));
        assert_eq!(line_of(text, "profiles.t0.risk.deny_at"), Some(12));
        assert_eq!(line_of(text, "store.url"), None);
    }
}
