//! Basic auth against bcrypt hashes, with a bounded cache of checked credentials.
//!
//! A bcrypt check costs about 70 ms of CPU at cost 10, on purpose. A scraper sends the
//! same credential every 15 s, so each credential checked is remembered (verified or
//! not) under the SHA-256 of user and password, never the password itself: a scrape
//! pays bcrypt once per credential. The cache holds [`CACHE_CAPACITY`] entries; checks
//! not in it run one at a time, so a client trying passwords costs the exporter at most
//! one core, and cached scrapes never wait behind them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::WebConfigError;

/// Distinct credentials remembered; beyond, failed ones are forgotten first.
pub const CACHE_CAPACITY: usize = 1024;

/// Hash of an unknown user's check: a missing user costs the same bcrypt as a wrong
/// password, so timing does not tell which users exist. ("x" at cost 10.)
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Wrong,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Wrong => "wrong",
        }
    }
}

pub struct Auth {
    users: Vec<(String, String)>,
    cache: Mutex<HashMap<[u8; 32], bool>>,
    bcrypt: Semaphore,
}

impl Auth {
    pub(super) fn new(
        users: &BTreeMap<String, String>,
        invalid: &dyn Fn(&str, &str, String) -> WebConfigError,
    ) -> Result<Auth, WebConfigError> {
        for (user, hash) in users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(invalid(&key, hash, "a user name cannot contain ':'".into()));
            }
            hash.parse::<bcrypt::HashParts>()
                .map_err(|source| invalid(&key, hash, format!("not a bcrypt hash: {source}")))?;
        }
        Ok(Auth {
            users: users.iter().map(|(u, h)| (u.clone(), h.clone())).collect(),
            cache: Mutex::new(HashMap::new()),
            bcrypt: Semaphore::new(1),
        })
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Checks an Authorization header.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> Result<(), AuthFailure> {
        let (user, password) = credentials(authorization).ok_or(AuthFailure::Missing)?;
        let key = cache_key(&user, &password);
        if let Some(ok) = self.cached(&key) {
            return if ok { Ok(()) } else { Err(AuthFailure::Wrong) };
        }
        // Every user name is compared, in constant time, whichever matches.
        let mut hash = DUMMY_HASH;
        let mut known = subtle::Choice::from(0);
        for (name, user_hash) in &self.users {
            let same = name.as_bytes().ct_eq(user.as_bytes());
            if bool::from(same) {
                hash = user_hash;
            }
            known |= same;
        }
        let hash = hash.to_string();
        let ok = {
            let _turn = self
                .bcrypt
                .acquire()
                .await
                .map_err(|_closed| AuthFailure::Wrong)?;
            // Another request may have checked the same credential meanwhile.
            match self.cached(&key) {
                Some(ok) => ok,
                None => {
                    let verified = tokio::task::spawn_blocking(move || {
                        bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
                    })
                    .await
                    .unwrap_or(false);
                    verified && bool::from(known)
                }
            }
        };
        self.remember(key, ok);
        if ok {
            Ok(())
        } else {
            Err(AuthFailure::Wrong)
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        self.cache.lock().ok()?.get(key).copied()
    }

    fn remember(&self, key: [u8; 32], ok: bool) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, ok| *ok);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, ok);
    }

    #[cfg(test)]
    pub(super) fn cache_len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

fn credentials(authorization: Option<&HeaderValue>) -> Option<(String, String)> {
    let value = authorization?.to_str().ok()?;
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

fn cache_key(user: &str, password: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&(user.len() as u64).to_be_bytes());
    context.update(user.as_bytes());
    context.update(password.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// 401 with the challenge a browser or Prometheus answers.
pub fn unauthorized() -> Response<Body> {
    let mut response = Response::new(Body::from("Unauthorized\n"));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        // "secret" at cost 4, to keep the test fast.
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users = BTreeMap::from([("prometheus".to_string(), hash)]);
        Auth::new(&users, &|k, v, r| WebConfigError::Invalid {
            file: "t".into(),
            key: k.into(),
            value: v.into(),
            reason: r,
        })
        .unwrap()
    }

    fn basic(user_password: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[tokio::test]
    async fn credentials_are_checked_and_remembered_by_hash() {
        let auth = auth();
        assert_eq!(auth.check(None).await, Err(AuthFailure::Missing));
        assert_eq!(
            auth.check(Some(&HeaderValue::from_static("Bearer x")))
                .await,
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            auth.check(Some(&basic("prometheus:wrong"))).await,
            Err(AuthFailure::Wrong)
        );
        assert_eq!(
            auth.check(Some(&basic("nobody:secret"))).await,
            Err(AuthFailure::Wrong)
        );
        assert_eq!(auth.check(Some(&basic("prometheus:secret"))).await, Ok(()));
        assert_eq!(auth.cache_len(), 3);
        assert_eq!(auth.check(Some(&basic("prometheus:secret"))).await, Ok(()));
        assert_eq!(auth.cache_len(), 3);
    }

    #[tokio::test]
    async fn cache_stays_bounded_and_keeps_good_credentials() {
        let auth = auth();
        assert_eq!(auth.check(Some(&basic("prometheus:secret"))).await, Ok(()));
        for i in 0..CACHE_CAPACITY + 10 {
            auth.remember(cache_key("attacker", &i.to_string()), false);
        }
        assert!(auth.cache_len() <= CACHE_CAPACITY);
        assert_eq!(auth.cached(&cache_key("prometheus", "secret")), Some(true));
    }

    #[test]
    fn dummy_hash_is_a_bcrypt_hash() {
        assert!(bcrypt::verify("x", DUMMY_HASH).is_ok());
    }
}
