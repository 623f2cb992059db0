//! Fuzz the text IR parser and verifier: no panic; whatever verifies prints and re-parses to
//! the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ncp_ir::text::{parse_function, print_function};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = parse_function(text) else { return };
    if ncp_ir::verify::verify(&f).is_err() {
        return;
    }
    let printed = print_function(&f);
    let again = parse_function(&printed).expect("printed IR parses");
    assert_eq!(print_function(&again), printed);
    let yp =
        ncp_ir::tensor::Tensor::from_rows(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
    let yt =
        ncp_ir::tensor::Tensor::from_rows(&[vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]]).unwrap();
    let _ = ncp_ir::interp::run(&f, &[yp.clone(), yt.clone()], 100_000);
    // The JIT must compile or refuse whatever verifies, never panic.
    if f.results.len() == 1 && f.results[0] == ncp_ir::Type::f32() {
        if let Ok(mut jit) = ncpc::jit::Jit::new()
            && let Ok(Some(got)) = ncpc::loss::evaluate_function_jit(&mut jit, &f, &yp, &yt)
            && let Ok(want) = ncpc::loss::evaluate_function(&f, &yp, &yt, true)
        {
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(
                same(got.loss, want.loss),
                "loss {} (jit) vs {} (interp)",
                got.loss,
                want.loss
            );
        }
    }
});
