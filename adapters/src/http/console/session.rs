//! Console sessions: logging in with a token gives a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie and a CSRF token that every form carries. A session keeps the
//! token's digest, not the token, and finds its caller again on every request, so a
//! revoked token ends its sessions within the tokens file's re-read interval. Sessions
//! live in memory: a restart logs everybody out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "intake_session";

/// A session ends after this long without a request.
const IDLE: Duration = Duration::from_secs(30 * 60);

/// And after this long in any case.
const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);

/// Most sessions held at once; the oldest is dropped to make room.
const MAX_SESSIONS: usize = 10_000;

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The SHA-256 (hex) of the token it logged in with.
    pub digest: String,
    /// The token every form must carry back.
    pub csrf: String,
    created: Instant,
    last: Instant,
}

impl Session {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_ok(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// Every open session, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the OS, in hex.
fn random() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random generator");
    intake_pipeline::hex(&bytes)
}

impl Sessions {
    /// Opens a session for the token whose digest is `digest`; returns its id.
    pub fn open(&self, digest: String) -> String {
        let id = random();
        let now = Instant::now();
        let mut open = self.open.lock().expect("sessions lock");
        open.retain(|_, s| live(s, now));
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            {
                open.remove(&oldest);
            }
        }
        let session = Session {
            digest,
            csrf: random(),
            created: now,
            last: now,
        };
        open.insert(id.clone(), session);
        id
    }

    /// The live session `id`, touched; None when unknown or expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut open = self.open.lock().expect("sessions lock");
        match open.get_mut(id) {
            Some(s) if live(s, now) => {
                s.last = now;
                Some(s.clone())
            }
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id`.
    pub fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(id);
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last) < IDLE && now.duration_since(s.created) < ABSOLUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_closed_and_checks_its_csrf_token() {
        let sessions = Sessions::default();
        let id = sessions.open("digest".into());
        let s = sessions.get(&id).unwrap();
        assert_eq!(s.digest, "digest");
        assert!(s.csrf_ok(&s.csrf) && !s.csrf_ok("forged"));
        assert!(sessions.get("other").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        assert_ne!(sessions.open("d".into()), sessions.open("d".into()));
    }
}
