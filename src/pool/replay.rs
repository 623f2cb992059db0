//! Refusing replayed AMM auth, for the pool server.
//!
//! An AMM signature covers only `auth:<unix seconds>`, so anyone who sees a request can replay
//! its auth fields while the timestamp is inside the skew window. The guard accepts each
//! (address, endpoint, message) triple once. The endpoint is part of the key because AMM
//! clients legitimately sign two different calls in the same second (`reset_active` then
//! `request`); the same call twice in the same second is refused, and AMM's own retries wait a
//! second or more and re-sign. Entries expire with the skew window, so memory is bounded by
//! (addresses × endpoints × window); a total cap bounds it against many addresses.
//!
//! Requests signed with the stronger header scheme ([`super::headers`]) are remembered by
//! (address, nonce) instead, so one client may make the same call twice in a second.

use super::headers::SignedHeaders;
use super::protocol::{Auth, AuthError};
use std::collections::{HashSet, VecDeque};

/// Remembers accepted (address, endpoint, message) triples while they could still verify.
pub struct ReplayGuard {
    max_skew: i64,
    capacity: usize,
    seen: HashSet<(String, String, String)>,
    /// (timestamp, triple), in insertion order, for expiry.
    order: VecDeque<(i64, (String, String, String))>,
}

/// Why the guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The auth fields do not verify.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// This address already used this message on this endpoint (or this header nonce).
    #[error("these auth fields were already used for this call; sign a fresh message")]
    Replayed,
    /// Too many live entries: the server is flooded; try again shortly.
    #[error("too many recent requests; try again in a few seconds")]
    Busy,
}

impl ReplayGuard {
    /// A guard for timestamps at most `max_skew` seconds from the server's clock, remembering
    /// at most `capacity` triples.
    pub fn new(max_skew: i64, capacity: usize) -> ReplayGuard {
        ReplayGuard {
            max_skew,
            capacity,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Verify `auth` for a call to `endpoint` (e.g. `POST /api/v1/tasks/request`) at `now`
    /// (unix seconds), and remember it.
    pub fn check(&mut self, auth: &Auth, endpoint: &str, now: i64) -> Result<(), ReplayError> {
        auth.verify(now, self.max_skew)?;
        self.expire(now);
        let key = (
            auth.public_address.clone(),
            endpoint.to_string(),
            auth.message.clone(),
        );
        // `verify` succeeded, so the timestamp parses.
        let t = auth.timestamp()?;
        self.remember(key, t)
    }

    /// Verify signed headers for a request (`method`, `path`, `body`) at `now`, and remember
    /// their nonce. The AMM auth fields in the body, if any, should be spent with [`spend`]
    /// so that they cannot be replayed without the headers.
    ///
    /// [`spend`]: ReplayGuard::spend
    pub fn check_headers(
        &mut self,
        h: &SignedHeaders,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), ReplayError> {
        h.verify(method, path, body, now, self.max_skew)?;
        self.expire(now);
        let key = (h.address.clone(), "#nonce".to_string(), h.nonce.clone());
        self.remember(key, h.timestamp)
    }

    /// Mark AMM auth fields as used for `endpoint` without verifying them (a request whose
    /// signed headers verified carries them too). Already-spent or malformed fields are ignored.
    pub fn spend(&mut self, auth: &Auth, endpoint: &str) {
        let Ok(t) = auth.timestamp() else {
            return;
        };
        let key = (
            auth.public_address.clone(),
            endpoint.to_string(),
            auth.message.clone(),
        );
        let _ = self.remember(key, t);
    }

    fn remember(&mut self, key: (String, String, String), t: i64) -> Result<(), ReplayError> {
        if self.seen.contains(&key) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::Busy);
        }
        self.seen.insert(key.clone());
        let at = self.order.partition_point(|(u, _)| *u <= t);
        self.order.insert(at, (t, key));
        Ok(())
    }

    /// Forget triples whose timestamps can no longer pass the skew check.
    fn expire(&mut self, now: i64) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_sub(*t) <= self.max_skew {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.seen.remove(&key);
            }
        }
    }

    /// How many triples are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
