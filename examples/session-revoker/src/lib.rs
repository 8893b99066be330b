//! How a gateway revokes sessions in real time with assertd: it keeps its
//! own session table (here in memory), watches assertd's event log
//! (`CredentialService.WatchEvents`), and ends a user's sessions when the
//! user is flagged HIGH, when every credential of the user is revoked, or
//! when the credential a session signed in with is revoked or deleted.
//!
//! The watcher keeps the cursor of the last event it handled: when the
//! stream ends (a replica restarts, the network drops) it reconnects with
//! that cursor and handles what happened meanwhile, so no revocation is
//! missed. `OUT_OF_RANGE` means the cursor is older than assertd's
//! retention: events were missed, so the only safe answer is to end every
//! session (or re-check each with assertd) and watch from now.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions = assertd_session_revoker::Sessions::default();
//! let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! tokio::spawn(assertd_session_revoker::watch(channel, vec!["login.example.com".into()], sessions.clone()));
//! sessions.start("session-1", "login.example.com", b"alice", b"credential-id");
//! # Ok(()) }
//! ```

use assertd_api::v1 as pb;
use parking_lot::Mutex;
use pb::EventKind;
use pb::credential_service_client::CredentialServiceClient;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The relying party.
    pub rp_id: String,
    /// The user.
    pub user_handle: Vec<u8>,
    /// The credential it signed in with.
    pub credential_id: Vec<u8>,
}

/// The gateway's sessions, and the last event cursor handled.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<String, Session>,
    cursor: String,
    ended: Vec<(String, String)>,
}

impl Sessions {
    /// Records a session after an allowed sign-in.
    pub fn start(&self, id: &str, rp_id: &str, user_handle: &[u8], credential_id: &[u8]) {
        let s = Session { rp_id: rp_id.into(), user_handle: user_handle.into(), credential_id: credential_id.into() };
        self.lock().sessions.insert(id.into(), s);
    }

    /// Whether a session is still valid.
    pub fn is_active(&self, id: &str) -> bool {
        self.lock().sessions.contains_key(id)
    }

    /// The sessions ended so far, with why (for the demo and tests).
    pub fn ended(&self) -> Vec<(String, String)> {
        self.lock().ended.clone()
    }

    /// The cursor of the last event handled (empty: none yet).
    pub fn cursor(&self) -> String {
        self.lock().cursor.clone()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Ends the sessions `event` says can no longer be trusted, and
    /// remembers its cursor.
    pub fn handle(&self, e: &pb::Event) {
        let mut st = self.lock();
        let why = match e.kind() {
            EventKind::UserRiskSet if e.detail.contains("high") => Some("the user was flagged at high risk"),
            EventKind::UserCredentialsRevoked => Some("every credential of the user was revoked"),
            EventKind::CredentialRevoked | EventKind::CredentialDeleted => Some("the session's credential was revoked"),
            _ => None,
        };
        if let Some(why) = why {
            let by_credential = matches!(e.kind(), EventKind::CredentialRevoked | EventKind::CredentialDeleted);
            let doomed: Vec<String> = st
                .sessions
                .iter()
                .filter(|(_, s)| {
                    s.rp_id == e.rp_id && if by_credential { s.credential_id == e.credential_id } else { s.user_handle == e.user_handle }
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in doomed {
                st.sessions.remove(&id);
                st.ended.push((id, why.to_owned()));
            }
        }
        st.cursor.clone_from(&e.cursor);
    }

    /// Ends every session: events were missed.
    fn end_all(&self, why: &str) {
        let mut st = self.lock();
        let ids: Vec<String> = st.sessions.keys().cloned().collect();
        for id in ids {
            st.sessions.remove(&id);
            st.ended.push((id, why.to_owned()));
        }
        st.cursor.clear();
    }
}

/// Watches assertd's events for `rp_ids` for ever, reconnecting with the
/// last cursor (1 s apart when assertd is unreachable).
pub async fn watch(channel: tonic::transport::Channel, rp_ids: Vec<String>, sessions: Sessions) {
    let mut client = CredentialServiceClient::new(channel);
    loop {
        let req = pb::WatchEventsRequest { rp_ids: rp_ids.clone(), after_cursor: sessions.cursor() };
        match client.watch_events(req).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(m)) => {
                            if let Some(e) = m.event {
                                sessions.handle(&e);
                            }
                        }
                        Ok(None) => break,
                        Err(s) => {
                            tracing::info!(status = %s.message(), "event stream ended; reconnecting from the last cursor");
                            break;
                        }
                    }
                }
            }
            Err(s) if s.code() == tonic::Code::OutOfRange => {
                sessions.end_all("events were missed (cursor past the retention)");
                continue;
            }
            Err(s) => tracing::info!(status = %s.message(), "cannot watch events yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
