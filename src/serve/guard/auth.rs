//! HTTP basic auth against bcrypt hashes (`[server.basic_auth_users]`).
//!
//! bcrypt is slow on purpose (about 50 ms at cost 10), too slow to run for
//! every request of a dashboard that loads a dozen charts: a verified user
//! and password is remembered by its SHA-256 (never the password itself),
//! so only the first request of a client pays. The memory is bounded
//! ([`REMEMBERED`]) and emptied when full. A user that does not exist costs a
//! bcrypt run too, so that the time of a 401 does not tell which users do.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;

/// The endpoint answered without credentials: liveness, which says nothing
/// about the machine.
pub const OPEN_PATH: &str = "/-/healthy";

/// Most verified credentials remembered at once.
const REMEMBERED: usize = 1024;

/// The users and what has been verified of them.
pub struct Users {
    hashes: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// `router` behind basic auth for `users`; `router` itself when there are
/// none.
pub fn protect(router: Router, users: &BTreeMap<String, String>) -> Router {
    if users.is_empty() {
        return router;
    }
    let users = Arc::new(Users {
        hashes: users.clone(),
        verified: Mutex::new(HashSet::new()),
    });
    router.layer(axum::middleware::from_fn_with_state(users, require))
}

async fn require(State(users): State<Arc<Users>>, request: Request, next: Next) -> Response {
    if request.uri().path() == OPEN_PATH {
        return next.run(request).await;
    }
    let allowed = match credentials(request.headers()) {
        Some((user, password)) => {
            let users = users.clone();
            tokio::task::spawn_blocking(move || users.check(&user, &password))
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    if allowed {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"sonde\"")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

/// The user and password of an `Authorization: Basic` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl Users {
    /// Whether `password` is `user`'s. Blocking: runs bcrypt unless
    /// remembered.
    fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.hashes.get(user) else {
            // As slow as a known user; the answer is no whatever it says.
            if let Some(any) = self.hashes.values().next() {
                let _ = bcrypt::verify(password, any);
            }
            return false;
        };
        let digest = fingerprint(user, password, hash);
        if self.remembered().contains(&digest) {
            return true;
        }
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return false;
        }
        let mut verified = self.remembered();
        if verified.len() >= REMEMBERED {
            verified.clear();
        }
        verified.insert(digest);
        true
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// SHA-256 of user, password and hash: a changed hash (a reload) never
/// matches what the old one verified.
fn fingerprint(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, password, hash] {
        context.update(&(part.len() as u64).to_le_bytes());
        context.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(password: &str) -> Users {
        let hash = bcrypt::hash_with_salt(password, 4, [7; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        Users {
            hashes: BTreeMap::from([("ops".to_string(), hash)]),
            verified: Mutex::new(HashSet::new()),
        }
    }

    #[test]
    fn right_password_passes_and_is_remembered() {
        let users = users("s3cret");
        assert!(users.check("ops", "s3cret"));
        assert_eq!(users.remembered().len(), 1);
        assert!(users.check("ops", "s3cret"));
        assert!(!users.check("ops", "wrong"));
        assert!(!users.check("nobody", "s3cret"));
        assert_eq!(users.remembered().len(), 1);
    }

    #[test]
    fn basic_header_is_decoded() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic b3BzOnM6Mw==".parse().unwrap());
        assert_eq!(
            credentials(&headers),
            Some(("ops".to_string(), "s:3".to_string()))
        );
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(credentials(&headers), None);
    }
}
