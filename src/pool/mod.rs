//! The mining pool: the wire protocol shared by client and server ([`protocol`]), a blocking
//! client for it ([`client`]), the server's replay guard ([`replay`]) and the pool server
//! itself ([`server`], `ncpc pool serve`).

pub mod client;
pub mod headers;
pub mod protocol;
pub mod replay;
pub mod server;
