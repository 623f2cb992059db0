//! The mining pool. So far: the wire protocol shared by client and server ([`protocol`]).

pub mod protocol;
