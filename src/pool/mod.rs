//! The mining pool: the wire protocol shared by client and server ([`protocol`], with the
//! signed-header scheme in [`headers`]), a blocking client for it ([`client`]) and the pool
//! server itself ([`server`], `ncpc pool serve`; its replay guard lives in its store).

pub mod client;
pub mod headers;
pub mod protocol;
pub mod server;
