// Shared by the fuzz targets: compile text in every mode, optimize, run with a fuel limit.

use ncp_ir::interp::run;
use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncpc::formats::{CompileOptions, Format, Mode, compile};

pub const FUEL: u64 = 200_000;

pub fn inputs() -> [Tensor; 2] {
    let yp = Tensor::from_rows(&[vec![0.5, -1.0, 2.0], vec![3.0, 0.0, -0.25]]).unwrap();
    let yt = Tensor::from_rows(&[vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]]).unwrap();
    [yp, yt]
}

/// Compile, verify, optimize and run; every step may fail with an error, none may panic.
pub fn exercise(text: &str, format: Format) {
    for mode in [Mode::Compat, Mode::Strict] {
        let opts = CompileOptions {
            format: Some(format),
            mode,
            ..Default::default()
        };
        let Ok(c) = compile(text, &opts) else {
            continue;
        };
        ncp_ir::verify::verify(&c.func).expect("front ends produce verified IR");
        let mut f = c.func.clone();
        optimize(
            &mut f,
            OptOptions {
                verify_each: true,
                ..Default::default()
            },
        )
        .expect("optimizing verified IR succeeds");
        let a = run(&c.func, &inputs(), FUEL);
        let b = run(&f, &inputs(), FUEL);
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(
                format!("{a:?}").replace("NaN", "nan"),
                format!("{b:?}").replace("NaN", "nan"),
                "optimizing changed the result"
            );
        }
    }
}
