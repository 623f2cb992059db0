//! The mining pool. So far: the wire protocol shared by client and server ([`protocol`]) and a blocking
//! client for it ([`client`]); the server's replay guard ([`replay`]); no server yet.

pub mod client;
pub mod protocol;
pub mod replay;
