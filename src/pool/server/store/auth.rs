//! The replay guard, kept in the database so that a restart (or another replica on the same
//! Postgres) does not reopen the window a captured request could be replayed in.
//!
//! An AMM signature covers only `auth:<unix seconds>`, so the message is a one-time token per
//! key: accepted once across all endpoints. The one exception is the chain AMM's client
//! really sends within one second (read from its client.py): `register` at start-up, then
//! `reset_active`, then `request`, each at most once and in that order. A submission never
//! shares its message with another call. A signed-header nonce is a one-time token per key.
//! Rows are kept until their timestamp leaves the skew window, and swept now and then.

use super::Store;
use super::db::Exec;
use super::values::vals;
use crate::pool::server::error::ApiError;

/// A one-time token a signed request spends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthToken {
    /// AMM's `auth:T` message, used for `endpoint`: refused when already used, except along
    /// AMM's `register` -> `reset_active` -> `request` chain.
    Amm {
        /// The message.
        message: String,
        /// The endpoint's name (`register`, `request`, ...).
        endpoint: String,
    },
    /// AMM's message carried beside verified signed headers: marked used, so it cannot be
    /// replayed alone, without refusing the request if it was used already.
    AmmBeside {
        /// The message.
        message: String,
    },
    /// A signed-header nonce.
    Nonce(String),
}

/// The endpoints AMM's client signs with one message, in the order it sends them.
const AMM_CHAIN: [&str; 3] = ["register", "reset_active", "request"];

/// Whether an AMM message already used for `used` (comma-separated, in order) may also be
/// used for `endpoint`.
fn chain_allows(used: &str, endpoint: &str) -> bool {
    let Some(next) = AMM_CHAIN.iter().position(|e| *e == endpoint) else {
        return false;
    };
    used.split(',').all(|u| {
        AMM_CHAIN
            .iter()
            .position(|e| *e == u)
            .is_some_and(|at| at < next)
    })
}

/// Claims between sweeps of expired rows.
const SWEEP_EVERY: u32 = 256;

impl Store {
    /// Spend `tokens` for `address`, each remembered until
    /// `expires_ms`; 409 when one was spent before.
    pub fn claim_auth(
        &mut self,
        address: &str,
        tokens: &[AuthToken],
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        self.unsynced(|st| st.claim_tokens(address, tokens, expires_ms, now_ms))
    }

    /// Run `f` with commits not synced on their own: SQLite's WAL with `synchronous=NORMAL`
    /// (Postgres sessions commit that way unless a transaction is
    /// [durable](super::db::Tx::durable)). What they write survives a crash of the server
    /// process, and the next synced commit (every submission's) carries it to the disk; only
    /// a power loss (or a Postgres crash) in between could forget it. For writes whose loss
    /// costs nothing but a retry (an auth token, a lease), so that a signed call syncs the
    /// disk only when it stores work.
    pub(crate) fn unsynced<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        // Postgres sessions commit unsynced by default (pg.rs); only durable transactions
        // turn it on, for themselves.
        if !self.conn.is_sqlite() {
            return f(self);
        }
        self.conn.execute_batch("PRAGMA synchronous=NORMAL")?;
        let out = f(self);
        self.conn.execute_batch("PRAGMA synchronous=FULL")?;
        out
    }

    /// Each token is one statement in the common case (its own commit: a token spent stays
    /// spent whatever the call answers): an insert that fails when the token is there. Only
    /// an AMM message seen before is read back, and extended along AMM's chain by a
    /// compare-and-set update, so two servers racing for one message cannot both win.
    fn claim_tokens(
        &mut self,
        address: &str,
        tokens: &[AuthToken],
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let conn = &mut self.conn;
        for token in tokens {
            match token {
                AuthToken::Amm { message, endpoint } => {
                    let inserted = conn.execute(
                        "INSERT OR IGNORE INTO auth_used (address, token, endpoints, expires_ms)
                         VALUES (?1, ?2, ?3, ?4)",
                        vals![address, message.as_str(), endpoint.as_str(), expires_ms],
                    )?;
                    if inserted == 1 {
                        continue;
                    }
                    let used = conn
                        .query_opt(
                            "SELECT endpoints FROM auth_used WHERE address = ?1 AND token = ?2",
                            vals![address, message.as_str()],
                        )?
                        .map(|r| r.text(0))
                        .transpose()?
                        .unwrap_or_default();
                    let extended = chain_allows(&used, endpoint)
                        && conn.execute(
                            "UPDATE auth_used SET endpoints = ?3 WHERE address = ?1
                             AND token = ?2 AND endpoints = ?4",
                            vals![
                                address,
                                message.as_str(),
                                format!("{used},{endpoint}").as_str(),
                                used.as_str()
                            ],
                        )? == 1;
                    if !extended {
                        return Err(ApiError::Conflict(format!(
                            "these auth fields were already used (for {used}); sign a fresh \
                             message"
                        )));
                    }
                }
                AuthToken::AmmBeside { message } => {
                    conn.execute(
                        "INSERT OR IGNORE INTO auth_used (address, token, endpoints, expires_ms)
                         VALUES (?1, ?2, '*', ?3)",
                        vals![address, message.as_str(), expires_ms],
                    )?;
                }
                AuthToken::Nonce(nonce) => {
                    let key = format!("nonce:{nonce}");
                    let n = conn.execute(
                        "INSERT OR IGNORE INTO auth_used (address, token, endpoints, expires_ms)
                         VALUES (?1, ?2, '*', ?3)",
                        vals![address, key.as_str(), expires_ms],
                    )?;
                    if n == 0 {
                        return Err(ApiError::Conflict(
                            "this signed-header nonce was already used; sign a fresh request"
                                .into(),
                        ));
                    }
                }
            }
        }
        self.claims_since_sweep += 1;
        if self.claims_since_sweep >= SWEEP_EVERY {
            self.claims_since_sweep = 0;
            self.conn
                .execute("DELETE FROM auth_used WHERE expires_ms < ?1", vals![now_ms])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amm_s_start_up_chain_shares_a_message() {
        assert!(chain_allows("register", "reset_active"));
        assert!(chain_allows("register,reset_active", "request"));
        assert!(chain_allows("reset_active", "request"));
        assert!(!chain_allows("request", "reset_active"), "out of order");
        assert!(!chain_allows("request", "request"), "twice");
        assert!(
            !chain_allows("request", "submit_evaluation"),
            "submissions never share"
        );
        assert!(!chain_allows("*", "request"), "spent beside headers");
    }
}
