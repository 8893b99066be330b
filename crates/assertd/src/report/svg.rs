//! Inline SVG charts, drawn by hand: a line chart over weeks and a
//! horizontal stacked bar chart. Every drawn value is a `class="mark"`
//! element (what the browser test counts), every text escaped.

use std::fmt::Write;

/// The palette, in series order.
pub const COLORS: [&str; 6] = ["#1f6feb", "#e3801c", "#2da44e", "#8250df", "#cf222e", "#6e7781"];

/// `s` safe inside HTML or SVG text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A round axis maximum at or above `max` (1, 2 or 5 times a power of
/// ten), and at least 1.
fn nice_max(max: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            let v = p.saturating_mul(m);
            if v >= max {
                return v;
            }
        }
        if p > u64::MAX / 10 {
            return u64::MAX;
        }
        p *= 10;
    }
}

/// `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

const W: f64 = 720.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;

#[allow(clippy::cast_precision_loss)]
fn f(n: u64) -> f64 {
    n as f64
}

/// Series over the same x labels, as lines with points, y from 0.
pub fn lines(label: &str, x: &[String], series: &[(&str, Vec<u64>)]) -> String {
    let (h, top, bottom) = (260.0, 30.0, 40.0);
    let max = nice_max(series.iter().flat_map(|(_, v)| v.iter().copied()).max().unwrap_or(0));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = h - top - bottom;
    let n = x.len().max(2) - 1;
    let px = |i: usize| LEFT + plot_w * f(i as u64) / f(n as u64);
    let py = |v: u64| top + plot_h - plot_h * f(v) / f(max);
    let mut s = String::new();
    let _ = write!(s, r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {W} {h}" width="{W}" height="{h}">"#, escape(label));
    for t in 0..=4u64 {
        let v = max / 4 * t;
        let y = py(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#d0d7de"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            thousands(v)
        );
    }
    // At most 8 labels, the last one's always, none crowding it.
    let step = x.len().div_ceil(8).max(1);
    let last = x.len().saturating_sub(1);
    for (i, l) in x.iter().enumerate().filter(|(i, _)| *i == last || (i.is_multiple_of(step) && last - i >= step)) {
        let _ = write!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#, px(i), h - bottom + 16.0, escape(l));
    }
    for (k, (name, values)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", px(i), py(*v))).collect();
        let _ = write!(s, r#"<polyline class="mark" fill="none" stroke="{color}" stroke-width="2.5" points="{}"/>"#, points.join(" "));
        for (i, v) in values.iter().enumerate() {
            let _ = write!(
                s,
                r#"<circle class="mark" cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{}: {}</title></circle>"#,
                px(i),
                py(*v),
                escape(name),
                thousands(*v)
            );
        }
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            LEFT + 150.0 * f(k as u64),
            8.0,
            LEFT + 150.0 * f(k as u64) + 16.0,
            18.0,
            escape(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one per row, each stacked from its parts (legend:
/// `parts`' names, in the palette's order).
pub fn bars(label: &str, parts: &[&str], rows: &[(String, Vec<u64>)]) -> String {
    let row_h = 26.0;
    let (top, left) = (if parts.len() > 1 { 30.0 } else { 6.0 }, 260.0);
    let h = top + row_h * f(rows.len() as u64) + 10.0;
    let max = nice_max(rows.iter().map(|(_, v)| v.iter().sum::<u64>()).max().unwrap_or(0));
    let plot_w = W - left - 90.0;
    let mut s = String::new();
    let _ = write!(s, r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {W} {h}" width="{W}" height="{h}">"#, escape(label));
    if parts.len() > 1 {
        for (k, p) in parts.iter().enumerate() {
            let x = 20.0 + 150.0 * f(k as u64);
            let _ = write!(
                s,
                r#"<rect x="{x}" y="6" width="12" height="12" fill="{}"/><text x="{}" y="16" font-size="12">{}</text>"#,
                COLORS[k % COLORS.len()],
                x + 16.0,
                escape(p)
            );
        }
    }
    for (r, (name, values)) in rows.iter().enumerate() {
        let y = top + row_h * f(r as u64);
        let _ = write!(s, r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="12">{}</text>"#, left - 8.0, y + 16.0, escape(name));
        let mut x = left;
        for (k, v) in values.iter().enumerate() {
            let w = plot_w * f(*v) / f(max);
            if *v > 0 {
                let _ = write!(
                    s,
                    r#"<rect class="mark" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{}" fill="{}"><title>{}: {}</title></rect>"#,
                    w.max(1.0),
                    row_h - 6.0,
                    COLORS[k % COLORS.len()],
                    escape(parts.get(k).copied().unwrap_or(name)),
                    thousands(*v)
                );
            }
            x += w;
        }
        let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#, x + 6.0, y + 16.0, thousands(values.iter().sum()));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round_and_text_is_escaped() {
        assert_eq!([nice_max(0), nice_max(1), nice_max(3), nice_max(7), nice_max(101), nice_max(1_000_000)], [1, 1, 5, 10, 200, 1_000_000]);
        assert_eq!(thousands(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let svg = bars("<models>", &["vouched", "claimed"], &[("<script>".into(), vec![3, 1])]);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches(r#"class="mark""#).count(), 2);
        let svg = lines("kinds", &["2026-11-30".into(), "2026-12-07".into()], &[("device-bound", vec![1, 3]), ("synced", vec![0, 2])]);
        assert_eq!(svg.matches(r#"class="mark""#).count(), 6);
    }
}
