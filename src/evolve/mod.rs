//! Evolution: genetic operators per format ([`amm_ops`], [`daml_ops`], [`haz_ops`]) behind
//! one face ([`genome`]), the functional-equivalence cache ([`fec`]) and the search
//! strategies ([`engine`]).

pub mod amm_ops;
pub mod daml_ops;
pub mod engine;
pub mod fec;
pub mod genome;
pub mod haz_ops;
