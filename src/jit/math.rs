//! Transcendental functions the JIT calls: thin `extern "C"` wrappers, registered with the JIT
//! by name, around ncpc's own exp/log/sigmoid (`ncp_ir::math`, which exact mode also inlines)
//! and Rust's `f64` methods (the platform libm) for the rest; and the slice versions
//! (`ncp_v*`, [`ncp_ir::vmath`]) kernels call on whole buffers (`Jit::wide_calls`).

/// (symbol, address, number of arguments) for each function a kernel may call. Names
/// starting `ncp_v` take pointers and lengths (i64) and return nothing; of the others, names
/// ending in `64` take and return f64, the rest f32.
pub fn symbols() -> Vec<(&'static str, *const u8, usize)> {
    vec![
        ("ncp_vexpf", ncp_vexpf as *const u8, 3),
        ("ncp_vlogf", ncp_vlogf as *const u8, 3),
        ("ncp_vsigmoidf", ncp_vsigmoidf as *const u8, 3),
        ("ncp_vsoftmaxf", ncp_vsoftmaxf as *const u8, 4),
        ("ncp_exp64", ncp_exp64 as *const u8, 1),
        ("ncp_expf", ncp_expf as *const u8, 1),
        ("ncp_logf", ncp_logf as *const u8, 1),
        ("ncp_sinf", ncp_sinf as *const u8, 1),
        ("ncp_cosf", ncp_cosf as *const u8, 1),
        ("ncp_tanf", ncp_tanf as *const u8, 1),
        ("ncp_tanhf", ncp_tanhf as *const u8, 1),
        ("ncp_asinf", ncp_asinf as *const u8, 1),
        ("ncp_acosf", ncp_acosf as *const u8, 1),
        ("ncp_atanf", ncp_atanf as *const u8, 1),
        ("ncp_sigmoidf", ncp_sigmoidf as *const u8, 1),
        ("ncp_powf", ncp_powf as *const u8, 2),
        ("ncp_hypotf", ncp_hypotf as *const u8, 2),
        ("ncp_remf", ncp_remf as *const u8, 2),
    ]
}

macro_rules! unary {
    ($name:ident, $e:expr) => {
        /// Called from JIT code.
        pub extern "C" fn $name(x: f32) -> f32 {
            let f: fn(f64) -> f64 = $e;
            f(x as f64) as f32
        }
    };
}

// Each is computed in f64 and rounded once, exactly as the interpreter does, so the JIT and
// the interpreter agree bit for bit on these functions.
unary!(ncp_expf, ncp_ir::math::exp64);
unary!(ncp_logf, ncp_ir::math::ln64);
unary!(ncp_sinf, f64::sin);
unary!(ncp_cosf, f64::cos);
unary!(ncp_tanf, f64::tan);
unary!(ncp_tanhf, f64::tanh);
unary!(ncp_asinf, f64::asin);
unary!(ncp_acosf, f64::acos);
unary!(ncp_atanf, f64::atan);
unary!(ncp_sigmoidf, ncp_ir::math::sigmoid64);

/// Called from JIT code.
pub extern "C" fn ncp_powf(x: f32, y: f32) -> f32 {
    (x as f64).powf(y as f64) as f32
}

/// Called from JIT code.
pub extern "C" fn ncp_hypotf(x: f32, y: f32) -> f32 {
    (x as f64).hypot(y as f64) as f32
}

/// torch.remainder. Called from JIT code.
pub extern "C" fn ncp_remf(a: f32, b: f32) -> f32 {
    let (a, b) = (a as f64, b as f64);
    let m = a % b;
    (if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        m + b
    } else {
        m
    }) as f32
}

/// exp in f64 (softmax keeps its intermediates in f64, as the interpreter does).
pub extern "C" fn ncp_exp64(x: f64) -> f64 {
    ncp_ir::math::exp64(x)
}

macro_rules! slice_map {
    ($name:ident, $f:path) => {
        /// Called from JIT code on one of its buffers: `dst[k] = f(src[k])` for `k < n`.
        ///
        /// # Safety
        /// `src` and `dst` point to `n` f32 each, and do not overlap.
        pub unsafe extern "C" fn $name(src: *const f32, dst: *mut f32, n: i64) {
            // SAFETY: the caller's contract.
            let (src, dst) = unsafe { buffers(src, dst, n) };
            $f(src, dst)
        }
    };
}

slice_map!(ncp_vexpf, ncp_ir::vmath::exp_f32);
slice_map!(ncp_vlogf, ncp_ir::vmath::log_f32);
slice_map!(ncp_vsigmoidf, ncp_ir::vmath::sigmoid_f32);

/// Called from JIT code: softmax of each row of `cols` elements of `src[..n]` into `dst`.
///
/// # Safety
/// `src` and `dst` point to `n` f32 each, do not overlap, and `n` is a multiple of `cols`.
pub unsafe extern "C" fn ncp_vsoftmaxf(src: *const f32, dst: *mut f32, n: i64, cols: i64) {
    // SAFETY: the caller's contract.
    let (src, dst) = unsafe { buffers(src, dst, n) };
    ncp_ir::vmath::softmax_f32(src, dst, cols.max(1) as usize)
}

/// The two kernel buffers an `ncp_v*` routine is called on, as slices of `n` elements (none
/// for a negative `n`).
///
/// # Safety
/// `src` and `dst` point to `n` f32 each, and do not overlap.
unsafe fn buffers<'a>(src: *const f32, dst: *mut f32, n: i64) -> (&'a [f32], &'a mut [f32]) {
    let n = n.max(0) as usize;
    // SAFETY: the caller's contract.
    unsafe {
        (
            std::slice::from_raw_parts(src, n),
            std::slice::from_raw_parts_mut(dst, n),
        )
    }
}
