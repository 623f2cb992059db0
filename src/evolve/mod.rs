//! Evolution: genetic operators ([`amm_ops`]), the functional-equivalence cache ([`fec`])
//! and the search strategies ([`engine`]).

pub mod amm_ops;
pub mod engine;
pub mod fec;
