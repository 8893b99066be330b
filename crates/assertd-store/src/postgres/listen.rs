//! The change feed: a LISTEN connection that turns NOTIFYs into cache
//! invalidations.

use super::CHANNEL;
use super::tls::Connector;
use crate::types::Change;
use std::time::Duration;
use tokio::sync::broadcast;

/// Keeps a LISTEN connection open; on every (re)subscription, tells caches
/// to drop everything, since changes may have been missed meanwhile.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    tls: Connector,
    tx: broadcast::Sender<Change>,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    use std::sync::atomic::Ordering;
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        match config.connect(tls.clone()).await {
            Err(e) => tracing::warn!(error = %e, "change feed: cannot connect to PostgreSQL; retrying"),
            Ok((client, mut connection)) => {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen_sql = format!("LISTEN {CHANNEL}");
                let subscribe = client.batch_execute(&listen_sql);
                // The connection must be driven while LISTEN runs.
                let subscribed = {
                    tokio::pin!(subscribe);
                    loop {
                        tokio::select! {
                            r = &mut subscribe => break r,
                            m = futures_util::StreamExt::next(&mut messages) => if m.is_none() { break Ok(()) },
                        }
                    }
                };
                if subscribed.is_ok() {
                    up.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                    if !first {
                        tracing::info!("change feed: re-subscribed; dropping cached credentials that may have changed meanwhile");
                    }
                    let _ = tx.send(Change::All);
                    first = false;
                    if let Some(s) = ready.take() {
                        let _ = s.send(());
                    }
                    while let Some(m) = futures_util::StreamExt::next(&mut messages).await {
                        match m {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if let Some(change) = parse_notification(n.payload()) {
                                    let _ = tx.send(change);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "change feed: connection lost");
                                break;
                            }
                        }
                    }
                    up.store(false, Ordering::Relaxed);
                    // Keep the cache while disconnected (cached credentials
                    // keep verifying through an outage); it is dropped on
                    // re-subscription, above, for what may have been missed.
                }
                drop(client);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// "rp_id hex(credential_id)", "counted rp_id hex(credential_id)",
/// "risk rp_id hex(user_handle)" (RP IDs have no spaces), or "events".
fn parse_notification(payload: &str) -> Option<Change> {
    if payload == "events" {
        return Some(Change::Events);
    }
    let prefixed = |p: &str| payload.strip_prefix(p).filter(|rest| rest.contains(' '));
    let (kind, rest) = match (prefixed("counted "), prefixed("risk ")) {
        (Some(rest), _) => ("counted", rest),
        (_, Some(rest)) => ("risk", rest),
        _ => ("", payload),
    };
    let (rp, hex) = rest.rsplit_once(' ')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let id = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()?;
    let rp_id = rp.to_owned();
    Some(match kind {
        "counted" => Change::Counted { rp_id, credential_id: id },
        "risk" => Change::UserRisk { rp_id, user_handle: id },
        _ => Change::Credential { rp_id, credential_id: id },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse() {
        assert_eq!(
            parse_notification("login.example.com 00ff10"),
            Some(Change::Credential { rp_id: "login.example.com".into(), credential_id: vec![0, 0xff, 0x10] })
        );
        assert_eq!(
            parse_notification("counted login.example.com 00ff10"),
            Some(Change::Counted { rp_id: "login.example.com".into(), credential_id: vec![0, 0xff, 0x10] })
        );
        // An RP named "counted" is still a plain change.
        assert_eq!(parse_notification("counted 0a"), Some(Change::Credential { rp_id: "counted".into(), credential_id: vec![10] }));
        assert_eq!(parse_notification("risk rp.example 0b"), Some(Change::UserRisk { rp_id: "rp.example".into(), user_handle: vec![11] }));
        assert_eq!(parse_notification("risk 0b"), Some(Change::Credential { rp_id: "risk".into(), credential_id: vec![11] }));
        assert_eq!(parse_notification("nospace"), None);
        assert_eq!(parse_notification("events"), Some(Change::Events));
        assert_eq!(parse_notification("rp 0"), None);
        assert_eq!(parse_notification("rp zz"), None);
    }
}
