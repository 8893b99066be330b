//! The adoption page: HTML with inline CSS and SVG, nothing else.

use super::svg::{bars, escape, lines, thousands};
use super::{Adoption, PreviewDigest, RpAdoption};
use std::fmt::Write;

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:760px;color:#1f2328}\
h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #d0d7de}h3{font-size:15px;margin:22px 0 4px}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:right}\
td:first-child,th:first-child,td.l,th.l{text-align:left}.note{color:#59636e;font-size:12px}svg{display:block;margin:6px 0}";

/// The page for `a`.
pub fn render(a: &Adoption) -> String {
    let mut s = String::new();
    let when = super::date(a.generated_at_ms.div_euclid(super::DAY_MS));
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Passkey adoption, {when}</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(s, "<h1>Passkey adoption</h1><p class=\"note\">assertd, {when} (UTC). Unrevoked credentials unless said otherwise.</p>");
    if a.rps.is_empty() {
        s.push_str("<p>No relying party is configured.</p>");
    }
    for rp in &a.rps {
        relying_party(&mut s, rp);
    }
    if let Some(p) = &a.preview {
        preview(&mut s, p);
    }
    s.push_str("</body></html>\n");
    s
}

fn relying_party(s: &mut String, rp: &RpAdoption) {
    let _ = write!(
        s,
        "<h2>{}</h2><p>{} credentials of {} users ({} revoked).</p>",
        escape(&rp.rp_id),
        thousands(rp.credentials),
        thousands(rp.users),
        thousands(rp.revoked)
    );
    s.push_str("<h3>Credentials by passkey kind, by registration week</h3>");
    if rp.weeks.is_empty() {
        s.push_str("<p class=\"note\">No credentials.</p>");
    } else {
        let x: Vec<String> = rp.weeks.iter().map(|w| w.0.clone()).collect();
        let db: Vec<u64> = rp.weeks.iter().map(|w| w.1).collect();
        let synced: Vec<u64> = rp.weeks.iter().map(|w| w.2).collect();
        s.push_str(&lines("credentials by kind over time", &x, &[("device-bound", db), ("synced", synced)]));
        s.push_str("<p class=\"note\">Registered up to the end of each week (its Monday shown), still unrevoked.</p>");
    }
    s.push_str("<h3>Credentials by authenticator model</h3>");
    let models: Vec<(String, Vec<u64>)> = rp.models.iter().map(|(n, v, u)| (n.clone(), vec![*v, *u])).collect();
    s.push_str(&bars("credentials by model", &["attestation vouched", "claimed only"], &models));
    s.push_str("<h3>Users by their strongest credential</h3>");
    let strongest = [("device-bound, attested", rp.strongest[0]), ("device-bound", rp.strongest[1]), ("synced only", rp.strongest[2])];
    let rows: Vec<(String, Vec<u64>)> = strongest.iter().map(|(k, n)| ((*k).to_owned(), vec![*n])).collect();
    s.push_str(&bars("users by strongest credential", &["users"], &rows));
    s.push_str("<h3>Users without a usable credential, per profile in force</h3>");
    let rows: Vec<(String, Vec<u64>)> =
        rp.profiles.iter().map(|(name, role, _, without)| (format!("{name} ({})", role.replace('_', "-")), vec![*without])).collect();
    s.push_str(&bars("users without a usable credential per profile", &["users"], &rows));
    s.push_str("<table><tr><th>profile</th><th class=\"l\">role</th><th>users (revoked credentials too)</th><th>without a usable credential</th></tr>");
    for (name, role, users, without) in &rp.profiles {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(role),
            thousands(*users),
            thousands(*without)
        );
    }
    s.push_str(
        "</table><p class=\"note\">A user is counted when each of their credentials would be refused under the profile \
         (a clean sign-in: user verified, no risk signal); a tier profile that admits only device-bound passkeys counts the \
         users who hold none.</p>",
    );
}

fn preview(s: &mut String, p: &PreviewDigest) {
    let _ = write!(
        s,
        "<h2>Last policy preview</h2><p>{} credentials read, judged under the candidate{}; {} users listed.</p>",
        thousands(p.credentials_scanned),
        if p.compared { " and the policy in force" } else { "" },
        thousands(p.users_listed)
    );
    let rows: Vec<(String, Vec<u64>)> = p
        .profiles
        .iter()
        .map(|r| {
            (
                format!("{} / {}", r.rp_id, r.profile),
                vec![r.allowed, r.stepped_up, r.refused.saturating_sub(r.newly_refused), r.newly_refused],
            )
        })
        .collect();
    s.push_str(&bars("preview verdicts per profile", &["allowed", "step-up", "refused already", "newly refused"], &rows));
    s.push_str("<table><tr><th>relying party / profile</th><th>refused</th><th>newly</th><th>users without a usable credential</th><th>newly</th></tr>");
    for r in &p.profiles {
        let _ = write!(
            s,
            "<tr><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.rp_id),
            escape(&r.profile),
            thousands(r.refused),
            thousands(r.newly_refused),
            thousands(r.users_without_usable),
            thousands(r.users_newly_without_usable)
        );
        for (reason, n) in &r.refused_by_reason {
            let _ = write!(
                s,
                "<tr><td class=\"note\">&nbsp;&nbsp;{}</td><td class=\"note\">{}</td><td></td><td></td><td></td></tr>",
                escape(reason),
                thousands(*n)
            );
        }
    }
    s.push_str("</table>");
}
