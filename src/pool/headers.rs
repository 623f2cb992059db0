//! The stronger auth scheme: four headers signing the method, the path, the SHA-256 of the
//! body, a timestamp and a nonce, so a captured request cannot be replayed (the nonce) nor
//! changed (the body hash) nor sent to another endpoint (method and path). ncpc's client sends
//! them beside AMM's body auth fields, which servers that do not know the scheme ignore; ncpc's
//! server checks them whenever `x-ncp-signature` is present.
//!
//! The signed text is, lines joined by `\n`:
//! `ncp-auth-v1`, the method in upper case, the path (without query), the lowercase hex SHA-256
//! of the body bytes, the timestamp (unix seconds), the nonce.

use super::protocol::AuthError;
use crate::identity::Identity;
use sha2::{Digest, Sha256};

/// The scheme's name, the first line of the signed text.
pub const SCHEME: &str = "ncp-auth-v1";
/// The signer's SS58 address.
pub const ADDRESS: &str = "x-ncp-address";
/// Unix seconds.
pub const TIMESTAMP: &str = "x-ncp-timestamp";
/// 16 to 128 characters of `[0-9A-Za-z_-]`, never reused within the skew window.
pub const NONCE: &str = "x-ncp-nonce";
/// Hex sr25519 signature of the signed text.
pub const SIGNATURE: &str = "x-ncp-signature";

/// The header values of one signed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// SS58 address of the signer.
    pub address: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// A fresh random string.
    pub nonce: String,
    /// Hex signature of [`signed_text`].
    pub signature: String,
}

/// The text the signature covers.
pub fn signed_text(method: &str, path: &str, body: &[u8], timestamp: i64, nonce: &str) -> String {
    let digest: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{SCHEME}\n{}\n{path}\n{digest}\n{timestamp}\n{nonce}",
        method.to_ascii_uppercase()
    )
}

/// A random nonce (128 bits, hex).
pub fn new_nonce() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn bad(msg: &str) -> AuthError {
    AuthError::BadHeaders(msg.into())
}

impl SignedHeaders {
    /// Sign a request with `id` at `now` (unix seconds) with a fresh nonce.
    pub fn sign(id: &Identity, method: &str, path: &str, body: &[u8], now: i64) -> SignedHeaders {
        let nonce = new_nonce();
        let signature = id.sign_hex(signed_text(method, path, body, now, &nonce).as_bytes());
        SignedHeaders {
            address: id.ss58(),
            timestamp: now,
            nonce,
            signature,
        }
    }

    /// The (name, value) pairs to send.
    pub fn pairs(&self) -> [(&'static str, String); 4] {
        [
            (ADDRESS, self.address.clone()),
            (TIMESTAMP, self.timestamp.to_string()),
            (NONCE, self.nonce.clone()),
            (SIGNATURE, self.signature.clone()),
        ]
    }

    /// Read the headers with `get` (a lookup by lowercase name): `None` when there is no
    /// signature header (the request uses AMM's scheme), an error when the set is incomplete
    /// or malformed.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Option<SignedHeaders>, AuthError> {
        let Some(signature) = get(SIGNATURE) else {
            return Ok(None);
        };
        let address = get(ADDRESS).ok_or_else(|| bad("x-ncp-address is missing"))?;
        let timestamp = get(TIMESTAMP)
            .and_then(|t| t.trim().parse::<i64>().ok())
            .ok_or_else(|| bad("x-ncp-timestamp must be unix seconds"))?;
        let nonce = get(NONCE).ok_or_else(|| bad("x-ncp-nonce is missing"))?;
        let nonce_ok = (16..=128).contains(&nonce.len())
            && nonce
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !nonce_ok {
            return Err(bad(
                "x-ncp-nonce must be 16 to 128 characters of [0-9A-Za-z_-]",
            ));
        }
        Ok(Some(SignedHeaders {
            address,
            timestamp,
            nonce,
            signature,
        }))
    }

    /// Check the clock skew (at most `max_skew` seconds either way) and the signature over this
    /// request's method, path and body.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
        max_skew: i64,
    ) -> Result<(), AuthError> {
        super::protocol::check_skew(self.timestamp, now, max_skew)?;
        let text = signed_text(method, path, body, self.timestamp, &self.nonce);
        if Identity::verify(&self.address, text.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity::from_secret("//Alice", "test").unwrap()
    }

    #[test]
    fn a_signature_covers_method_path_body_and_time() {
        let h = SignedHeaders::sign(&alice(), "post", "/api/v1/x", b"{}", 1000);
        assert_eq!(h.verify("POST", "/api/v1/x", b"{}", 1000, 60), Ok(()));
        assert_eq!(
            h.verify("GET", "/api/v1/x", b"{}", 1000, 60),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            h.verify("POST", "/api/v1/y", b"{}", 1000, 60),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            h.verify("POST", "/api/v1/x", b"{ }", 1000, 60),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            h.verify("POST", "/api/v1/x", b"{}", 1100, 60),
            Err(AuthError::Skew(-100))
        );
        let mut other = h.clone();
        other.nonce = new_nonce();
        assert_eq!(
            other.verify("POST", "/api/v1/x", b"{}", 1000, 60),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn headers_round_trip_and_incomplete_sets_are_refused() {
        let h = SignedHeaders::sign(&alice(), "POST", "/p", b"", 5);
        let pairs = h.pairs();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(SignedHeaders::read(get), Ok(Some(h.clone())));
        assert_eq!(SignedHeaders::read(|_| None), Ok(None));
        let without_nonce = |name: &str| if name == NONCE { None } else { get(name) };
        assert!(SignedHeaders::read(without_nonce).is_err());
        let short_nonce = |name: &str| {
            if name == NONCE {
                Some("abc".into())
            } else {
                get(name)
            }
        };
        assert!(SignedHeaders::read(short_nonce).is_err());
    }
}
