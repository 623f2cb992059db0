//! Evolution: genetic operators per format ([`amm_ops`], [`daml_ops`], [`haz_ops`]) behind
//! one face ([`genome`]), the functional-equivalence cache ([`fec`]), the search
//! strategies ([`engine`]) with their settings ([`config`]) and checkpoints ([`checkpoint`]).

pub mod amm_ops;
pub mod checkpoint;
pub mod cmaes;
pub mod config;
pub mod daml_ops;
pub mod discover;
pub mod engine;
pub mod fec;
pub mod genome;
pub mod haz_ops;
pub mod ir_ops;
pub mod report;
pub mod run_dir;
pub mod tune;
