//! Differential fuzzing of the interpreter (with fuel) and the optimizer: random AMM programs
//! drawn from the fuzzer's seed, loss and gradient with and without optimization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ncp_ir::DimModel;
use ncpc::formats::{Mode, amm};
use rand::SeedableRng;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let seed = u64::from_le_bytes(data[..8].try_into().unwrap());
    let len = 1 + data[8] as usize % 40;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let p = amm::random::random_program(&mut rng, len, true);
    let Ok((f, _)) = amm::lower(&p, "g", Mode::Compat, DimModel::Symbolic) else {
        return;
    };
    let mut g = f.clone();
    ncp_ir::passes::optimize(&mut g, Default::default()).expect("optimize");
    let [yp, yt] = common::inputs();
    let a = ncpc::loss::evaluate_function(&f, &yp, &yt, false);
    let b = ncpc::loss::evaluate_function(&g, &yp, &yt, true);
    if let (Ok(a), Ok(b)) = (a, b) {
        assert!(
            a.loss.to_bits() == b.loss.to_bits() || (a.loss.is_nan() && b.loss.is_nan()),
            "loss changed"
        );
        assert_eq!(a.fault, b.fault);
    }
});
