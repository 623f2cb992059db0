//! Training on a burn device (the `burn-cpu` and `wgpu` features): the networks of the
//! protocols as burn modules ([`nets`]) and a whole population of candidate losses trained per
//! pass ([`population`]), each member reproducing the trainer's own run. The losses come from
//! the IR through [`crate::burn_backend::lower`].

#[cfg(feature = "wgpu")]
mod kernel_loss;
pub mod nets;
pub mod population;
