//! Text helpers: capping attacker-controlled strings quoted in messages.

/// Caps attacker-controlled strings quoted in messages (128 bytes, on a
/// character boundary).
pub fn truncate(s: &str) -> &str {
    truncate_to(s, 128)
}

/// Caps a string at `max` bytes, on a character boundary.
pub fn truncate_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
