//! The mining pool. So far: the wire protocol shared by client and server ([`protocol`]) and a blocking
//! client for it ([`client`]); no server yet.

pub mod client;
pub mod protocol;
