//! Training and evaluation of candidate losses: datasets ([`data`]), the protocols that
//! score a loss ([`protocol`]), and a deterministic MLP trainer whose backward pass takes
//! dL/dy_pred from the Cranelift kernel or the reference interpreter ([`candidate`]).

pub mod amm_exact;
#[cfg(feature = "burn-cpu")]
pub mod burn;
pub mod candidate;
pub mod composite;
pub mod custom;
pub mod data;
pub mod linalg;
pub mod model;
pub mod optim;
pub mod prepared;
pub mod protocol;
pub mod run;
pub mod seed_run;
pub mod stage;
pub mod task;
pub mod torch_rng;
