//! Passes over the IR. Each is a free function over `&mut Function` returning how many
//! instructions it removed or rewrote; [`pipeline`] runs them to a fixed point and re-verifies
//! after every pass in debug builds and tests.

pub mod canon;
pub mod cse;
pub mod dce;
pub mod depends;
pub mod fold;
pub mod grad;
pub mod hash;
pub mod pipeline;
pub mod simplify;
pub mod sink;
pub mod trace;

pub use depends::depends_on;
pub use grad::{GradFunction, gradient};
pub use hash::canonical_hash;
pub use pipeline::{OptOptions, PassStats, optimize};
