//! Basic auth against bcrypt hashes, with a bounded cache of checked credentials.
//!
//! A bcrypt check costs about 250 ms of CPU at cost 12, on purpose. A scraper sends the
//! same credential every 15 s, so each credential checked is remembered (verified or
//! not) under the SHA-256 of user and password, never the password itself: a scrape
//! pays bcrypt once per credential. The cache holds [`CACHE_CAPACITY`] entries; checks
//! not in it run on the [`Verifier`], fair between clients, so a client trying passwords
//! cannot delay another client's first login, and cached scrapes never wait at all.
//!
//! Costs above [`MAX_COST`] are refused at load: one check at cost 31 pins a core for
//! days. An unknown user's check runs against a dummy hash of the highest cost
//! configured, in the same queue, so it takes as long as a known user's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::verify::{Busy, Client, Verifier};
use super::WebConfigError;

/// Distinct credentials remembered; beyond, failed ones are forgotten first.
pub const CACHE_CAPACITY: usize = 1024;

/// The highest bcrypt cost accepted: a check takes about 4 s of one core at 16 (each step
/// doubles it), and a running check cannot be stopped.
pub const MAX_COST: u32 = 16;

/// The lowest cost bcrypt computes; a hash below it never matches.
const MIN_COST: u32 = 4;

/// Salt and digest of the dummy hash checked for an unknown user, after `$2y$NN$`: a
/// syntactically valid hash that no password matches in practice, used at the highest
/// configured cost.
const DUMMY_SALT_AND_DIGEST: &str = "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No basic-auth credentials.
    Missing,
    /// An unknown user or a wrong password.
    Wrong,
    /// The client's queue of bcrypt checks is full ([`super::verify::QUEUE_PER_CLIENT`]).
    Throttled,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Wrong => "wrong",
            AuthFailure::Throttled => "throttled",
        }
    }
}

pub struct Auth {
    users: Vec<(String, Arc<str>)>,
    /// Checked for a user that does not exist, at the highest configured cost.
    dummy: Arc<str>,
    cache: Mutex<HashMap<[u8; 32], bool>>,
}

impl Auth {
    pub(super) fn new(
        users: &BTreeMap<String, String>,
        invalid: &dyn Fn(&str, &str, String) -> WebConfigError,
    ) -> Result<Auth, WebConfigError> {
        let mut max_cost = MIN_COST;
        for (user, hash) in users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(invalid(&key, hash, "a user name cannot contain ':'".into()));
            }
            let cost = hash
                .parse::<bcrypt::HashParts>()
                .map_err(|source| invalid(&key, hash, format!("not a bcrypt hash: {source}")))?
                .get_cost();
            if cost > MAX_COST {
                return Err(invalid(
                    &key,
                    hash,
                    format!(
                        "bcrypt cost {cost} is above the maximum, {MAX_COST} (a check at \
                         {MAX_COST} takes about 4 s of CPU, and each step doubles it)"
                    ),
                ));
            }
            if cost < MIN_COST {
                return Err(invalid(
                    &key,
                    hash,
                    format!("bcrypt cost {cost} is below bcrypt's minimum, {MIN_COST}: no password matches"),
                ));
            }
            max_cost = max_cost.max(cost);
        }
        Ok(Auth {
            users: users
                .iter()
                .map(|(u, h)| (u.clone(), Arc::from(h.as_str())))
                .collect(),
            dummy: Arc::from(format!("$2y${max_cost:02}${DUMMY_SALT_AND_DIGEST}")),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Checks an Authorization header sent by `client`; uncached credentials are checked
    /// on `verifier`.
    pub async fn check(
        &self,
        authorization: Option<&HeaderValue>,
        client: Client,
        verifier: &Verifier,
    ) -> Result<(), AuthFailure> {
        let (user, password) = credentials(authorization).ok_or(AuthFailure::Missing)?;
        let key = cache_key(&user, &password);
        if let Some(ok) = self.cached(&key) {
            return if ok { Ok(()) } else { Err(AuthFailure::Wrong) };
        }
        // Every user name is compared, in constant time, whichever matches.
        let mut hash = &self.dummy;
        let mut known = subtle::Choice::from(0);
        for (name, user_hash) in &self.users {
            let same = name.as_bytes().ct_eq(user.as_bytes());
            if bool::from(same) {
                hash = user_hash;
            }
            known |= same;
        }
        let verified = verifier
            .verify(client, key, password, Arc::clone(hash))
            .await
            .map_err(|Busy| AuthFailure::Throttled)?;
        let ok = verified && bool::from(known);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(k: &str, v: &str, r: String) -> WebConfigError {
        WebConfigError::Invalid {
            file: "t".into(),
            key: k.into(),
            value: v.into(),
            reason: r,
        }
    }

    fn auth() -> Auth {
        // "secret" at cost 4, to keep the test fast.
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users = BTreeMap::from([("prometheus".to_string(), hash)]);
        Auth::new(&users, &invalid).unwrap()
    }

    /// A valid hash of `cost` without computing it: the cost digits of a cost-4 hash.
    fn hash_of_cost(cost: u32) -> String {
        let hash = bcrypt::hash("secret", 4).unwrap();
        format!("{}{cost:02}{}", &hash[..4], &hash[6..])
    }

    fn basic(user_password: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[tokio::test]
    async fn credentials_are_checked_and_remembered_by_hash() {
        let auth = auth();
        let pool = Verifier::new(1);
        let client = Client::of([127, 0, 0, 1].into());
        let check = |header: Option<HeaderValue>| {
            let (auth, pool) = (&auth, &pool);
            async move { auth.check(header.as_ref(), client, pool).await }
        };
        assert_eq!(check(None).await, Err(AuthFailure::Missing));
        assert_eq!(
            check(Some(HeaderValue::from_static("Bearer x"))).await,
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            check(Some(basic("prometheus:wrong"))).await,
            Err(AuthFailure::Wrong)
        );
        assert_eq!(
            check(Some(basic("nobody:secret"))).await,
            Err(AuthFailure::Wrong)
        );
        assert_eq!(check(Some(basic("prometheus:secret"))).await, Ok(()));
        assert_eq!(auth.cache_len(), 3);
        assert_eq!(check(Some(basic("prometheus:secret"))).await, Ok(()));
        assert_eq!(auth.cache_len(), 3);
    }

    #[tokio::test]
    async fn cache_stays_bounded_and_keeps_good_credentials() {
        let auth = auth();
        let pool = Verifier::new(1);
        let client = Client::of([127, 0, 0, 1].into());
        let header = basic("prometheus:secret");
        assert_eq!(auth.check(Some(&header), client, &pool).await, Ok(()));
        for i in 0..CACHE_CAPACITY + 10 {
            auth.remember(cache_key("attacker", &i.to_string()), false);
        }
        assert!(auth.cache_len() <= CACHE_CAPACITY);
        assert_eq!(auth.cached(&cache_key("prometheus", "secret")), Some(true));
    }

    /// The dummy hash was cost 10 while users had 12: an unknown user answered in 63 ms,
    /// a wrong password in 237 ms, which told which users exist.
    #[test]
    fn dummy_hash_cost_was_10_below_the_users_12() {
        let users = BTreeMap::from([
            ("a".to_string(), hash_of_cost(5)),
            ("b".to_string(), hash_of_cost(12)),
        ]);
        let auth = Auth::new(&users, &invalid).unwrap();
        let dummy: bcrypt::HashParts = auth.dummy.parse().unwrap();
        assert_eq!(dummy.get_cost(), 12);
        let low = BTreeMap::from([("a".to_string(), hash_of_cost(4))]);
        let dummy: bcrypt::HashParts = Auth::new(&low, &invalid).unwrap().dummy.parse().unwrap();
        assert_eq!(dummy.get_cost(), 4);
        assert!(bcrypt::verify("x", &Auth::new(&low, &invalid).unwrap().dummy).is_ok());
    }

    #[test]
    fn bcrypt_cost_31_was_accepted() {
        for (cost, want) in [
            (31, "bcrypt cost 31 is above the maximum, 16 (a check at 16 takes about 4 s of CPU, and each step doubles it)"),
            (17, "bcrypt cost 17 is above the maximum, 16 (a check at 16 takes about 4 s of CPU, and each step doubles it)"),
            (3, "bcrypt cost 3 is below bcrypt's minimum, 4: no password matches"),
        ] {
            let users = BTreeMap::from([("alice".to_string(), hash_of_cost(cost))]);
            let Err(WebConfigError::Invalid { key, reason, .. }) = Auth::new(&users, &invalid)
            else {
                panic!("cost {cost} accepted");
            };
            assert_eq!((key.as_str(), reason.as_str()), ("basic_auth_users.alice", want));
        }
        let users = BTreeMap::from([("alice".to_string(), hash_of_cost(16))]);
        assert!(Auth::new(&users, &invalid).is_ok());
    }

    /// Whether the user exists must not change the queue a check waits in: a client whose
    /// queue is full is refused for an unknown user as for a known one.
    #[tokio::test]
    async fn unknown_users_wait_in_the_same_queue() {
        let auth = auth();
        let pool = Verifier::new(1);
        let client = Client::of([127, 0, 0, 2].into());
        let _queued = pool.fill(client);
        for header in [basic("nobody:x"), basic("prometheus:y")] {
            assert_eq!(
                auth.check(Some(&header), client, &pool).await,
                Err(AuthFailure::Throttled)
            );
        }
        let other = Client::of([127, 0, 0, 1].into());
        pool.start_workers();
        let header = basic("prometheus:secret");
        assert_eq!(auth.check(Some(&header), other, &pool).await, Ok(()));
    }
}
