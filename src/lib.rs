//! ncpc: the Neural Component Pool compiler and client.
//!
//! Genomes in the three public formats ([`formats`]) compile to one typed SSA IR
//! ([`ncp_ir`]), which is optimized, differentiated and run by the reference interpreter
//! ([`loss`]). The command line lives in [`cli`].

pub mod burn_backend;
pub mod cli;
pub mod component;
pub mod evolve;
pub mod explain;
pub mod formats;
pub mod gpu;
pub mod identity;
pub mod jit;
pub mod loss;
pub mod mine;
pub mod mine_control;
pub mod mine_ui;
pub mod numbers;
pub mod pool;
pub mod train;
pub mod ui;
pub mod validate;

pub use ncp_ir as ir;
