//! Differential fuzzing of the Cranelift JIT against the interpreter: random AMM programs and
//! DAML trees drawn from the fuzzer's seed, compiled and run on both; the JIT must agree bit
//! for bit wherever it takes the program, in both kernel tiers (the hot one with and without
//! its calls on whole buffers). Programs that branch on the data also get the guarded kernel
//! of the path another input takes (y_pred negated): on these inputs it must agree bit for
//! bit when they take that path too, and give a NaN loss when they do not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ncp_ir::DimModel;
use ncp_ir::passes::{OptOptions, optimize};
use ncpc::formats::daml::{self, PSet};
use ncpc::formats::{Mode, amm};
use rand::SeedableRng;
use std::cell::RefCell;

#[path = "common.rs"]
mod common;

thread_local! {
    static JIT: RefCell<ncpc::jit::Jit> = RefCell::new(ncpc::jit::Jit::new().expect("host supported"));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let seed = u64::from_le_bytes(data[..8].try_into().unwrap());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let f = if data[8] % 2 == 0 {
        let p = amm::random::random_program(&mut rng, 1 + data[9] as usize % 30, data[8] % 4 == 0);
        match amm::lower(&p, "g", Mode::Compat, DimModel::Symbolic) {
            Ok((f, _)) => f,
            Err(_) => return,
        }
    } else {
        let e = daml::random_expr(
            &mut rng,
            1,
            1 + data[9] as usize % 6,
            if data[8] % 4 == 1 {
                PSet::Miner
            } else {
                PSet::Validator
            },
        );
        daml::lower(&e, "g", DimModel::Symbolic).expect("random DAML trees compile")
    };
    let mut f = f;
    optimize(&mut f, OptOptions::default()).expect("optimize");
    let [yp, yt] = common::inputs();
    let Ok(want) = ncpc::loss::evaluate_function(&f, &yp, &yt, true) else {
        return;
    };
    JIT.with(|j| {
        let mut jit = j.borrow_mut();
        // Every kernel variant must agree with the interpreter: both tiers, each with its
        // per-element math and with calls to ncp_ir::vmath on whole buffers.
        jit.tier = if data[9] % 2 == 0 {
            ncpc::jit::Tier::Quick
        } else {
            ncpc::jit::Tier::Hot
        };
        jit.wide_calls = (data[9] / 2) % 2 == 0 && ncp_ir::vmath::wide();
        if let Some(got) = ncpc::loss::evaluate_function_jit(&mut jit, &f, &yp, &yt)
            .expect("the JIT compiles what it accepts")
        {
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(
                same(got.loss, want.loss),
                "loss {} (jit) vs {} (interp)",
                got.loss,
                want.loss
            );
            assert_eq!(got.grad.is_some(), want.grad.is_some());
            if let (Some(a), Some(b)) = (&got.grad, &want.grad) {
                for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                    assert!(same(*x, *y), "gradient {x} (jit) vs {y} (interp)");
                }
            }
        }
        // A kernel that carries its loss, run in consecutive blocks of 1-3 rows: still the
        // interpreter's values, bit for bit.
        if want.fault.is_none()
            && let Ok(Some(cl)) = jit.compile_loss(&f)
            && jit.kernel_of(&cl).carries_loss()
        {
            let (b, c) = (yp.shape[0], yp.shape[1]);
            let mut grad = vec![0f32; jit.kernel_of(&cl).grad_len(b, c)];
            let rows = 1 + (data[8] as usize / 4) % 3;
            let (p, t) = (yp.to_f32(), yt.to_f32());
            let loss = jit
                .run_in_row_blocks(&cl, &p, &t, b, c, &mut grad, rows)
                .expect("sizes fit");
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(
                same(loss, want.loss),
                "loss in blocks of {rows} rows {loss} vs {} (interp)",
                want.loss
            );
            if let Some(w) = &want.grad {
                for (x, y) in grad.iter().zip(w.iter().flatten()) {
                    assert!(same(*x, *y), "gradient in blocks {x} vs {y} (interp)");
                }
            }
        }
        let negated = ncp_ir::tensor::Tensor::new(
            yp.dtype,
            yp.shape.clone(),
            yp.data.iter().map(|x| -x).collect(),
        );
        let other = [negated, yt.clone()];
        let Some(g) = ncpc::jit::paths::guarded_path(&f, &other[0], &other[1]) else {
            return;
        };
        let Some(cl) = jit
            .compile_loss(&g)
            .expect("the JIT compiles what it accepts")
        else {
            return;
        };
        let path = |x: &[ncp_ir::tensor::Tensor]| {
            ncp_ir::interp::run_traced(&f, x, ncp_ir::interp::DEFAULT_FUEL)
                .ok()
                .map(|(_, p)| p)
        };
        let on_path = path(&other) == path(&[yp.clone(), yt.clone()]);
        let (b, c) = (yp.shape[0], yp.shape[1]);
        let mut grad = vec![0f32; jit.kernel_of(&cl).grad_len(b, c)];
        let loss = jit
            .run(&cl, &yp.to_f32(), &yt.to_f32(), b, c, &mut grad)
            .expect("sizes fit");
        if !on_path || want.fault.is_some() {
            assert!(
                loss.is_nan(),
                "another path, but the guarded kernel gave {loss}"
            );
        } else {
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(
                same(loss, want.loss),
                "guarded loss {loss} vs {} (interp)",
                want.loss
            );
        }
    });
});
