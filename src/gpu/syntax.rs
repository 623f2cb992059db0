//! The three spellings of a population kernel: CUDA C, host C and WGSL. The walk over the IR
//! (`emit`) is the same for all three; this file says how each dialect declares a value, loops
//! over a row, converts between types, writes literals, and wraps the row functions into a
//! kernel. Every op with more to it than one operator is a helper function (`ncp_*`) that each
//! dialect defines with the interpreter's semantics, so the walk calls helpers by one name.

use ncp_ir::DType;
use std::fmt::Write;

/// Which compiler the source is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// CUDA C for NVRTC: `extern "C" __global__`, the grid from block and thread indices.
    Cuda,
    /// C99 for the host compiler: the grid as two loops.
    HostC,
    /// WGSL for wgpu: one compute shader, the grid as (rows / 64, candidates) workgroups.
    Wgsl,
}

/// One dialect's spelling.
#[derive(Copy, Clone)]
pub(super) struct Syn(pub Dialect);

impl Syn {
    fn wgsl(self) -> bool {
        self.0 == Dialect::Wgsl
    }

    /// The element type of a value of `dt` (bools are floats 0 and 1; i64 is i32 in WGSL).
    pub fn ty(self, dt: DType) -> &'static str {
        match (self.wgsl(), dt) {
            (false, DType::I64) => "long long",
            (false, _) => "float",
            (true, DType::I64) => "i32",
            (true, _) => "f32",
        }
    }

    /// `name = e` as a new scalar.
    pub fn scalar(self, dt: DType, name: &str, e: &str) -> String {
        if self.wgsl() {
            format!("    let {name}: {} = {e};\n", self.ty(dt))
        } else {
            format!("    {} {name} = {e};\n", self.ty(dt))
        }
    }

    /// A row array `name` (one element per class) of `dt`.
    pub fn array(self, dt: DType, name: &str) -> String {
        if self.wgsl() {
            format!("    var {name}: array<{}, NCP_C>;\n", self.ty(dt))
        } else {
            format!("    {} {name}[NCP_C];\n", self.ty(dt))
        }
    }

    /// `stmt` for every class index `c`.
    pub fn each(self, stmt: &str) -> String {
        if self.wgsl() {
            format!("    for (var c = 0; c < NCP_C; c++) {{ {stmt} }}\n")
        } else {
            format!("    for (int c = 0; c < NCP_C; c++) {{ {stmt} }}\n")
        }
    }

    /// Float arithmetic: C's operator, or WGSL's helper that keeps IEEE's NaN and infinity
    /// rules (a WGSL compiler may assume neither occurs and fold `x * 0` to 0).
    pub fn arith(self, helper: &str, op: &str, a: &str, b: &str) -> String {
        if self.wgsl() {
            format!("ncp_{helper}({a}, {b})")
        } else {
            format!("({a} {op} {b})")
        }
    }

    /// A row array passed to a helper.
    pub fn arg(self, name: &str) -> String {
        if self.wgsl() {
            format!("&{name}")
        } else {
            name.to_string()
        }
    }

    /// `e` as f32.
    pub fn to_f32(self, e: &str) -> String {
        if self.wgsl() {
            format!("f32({e})")
        } else {
            format!("(float)({e})")
        }
    }

    /// `e` as the integer type.
    pub fn to_int(self, e: &str) -> String {
        if self.wgsl() {
            format!("i32({e})")
        } else {
            format!("(long long)({e})")
        }
    }

    /// A dimension in a count (a float expression).
    pub fn count_factor(self, dim: &ncp_ir::Dim) -> String {
        match (dim, self.wgsl()) {
            (ncp_ir::Dim::B, false) => "(double)B".into(),
            (ncp_ir::Dim::C, false) => "(double)NCP_C".into(),
            (ncp_ir::Dim::Fixed(n), false) => format!("{n}.0"),
            (ncp_ir::Dim::B, true) => "f32(B)".into(),
            (ncp_ir::Dim::C, true) => "f32(NCP_C)".into(),
            (ncp_ir::Dim::Fixed(n), true) => format!("{n}.0f"),
        }
    }

    /// The count of a scalar (no dimensions).
    pub fn one(self) -> &'static str {
        if self.wgsl() { "1.0f" } else { "1.0" }
    }

    /// An integer literal, or `None` where the dialect's integers cannot hold it (WGSL's are
    /// 32-bit; i32::MIN has no literal, being the negation of an out-of-range one).
    pub fn int_lit(self, x: i64) -> Option<String> {
        if !self.wgsl() {
            return Some(format!("{x}LL"));
        }
        i32::try_from(x)
            .ok()
            .filter(|v| *v != i32::MIN)
            .map(|v| format!("{v}i"))
    }

    /// A float literal for `x`: Rust's shortest representation that reads back as the same
    /// f32, or an expression for the non-finite values.
    pub fn flit(self, x: f32) -> String {
        match (x.is_nan(), x.is_infinite(), self.wgsl()) {
            (true, _, false) => "(0.0f/0.0f)".into(),
            (true, _, true) => "ncp_nan()".into(),
            (_, true, false) => if x > 0.0 { "NCP_INF" } else { "(-NCP_INF)" }.into(),
            (_, true, true) => if x > 0.0 { "ncp_inf()" } else { "(-ncp_inf())" }.into(),
            _ => format!("{x:e}f"),
        }
    }

    /// The statement that sets the row's loss share to `e` (a row array's sum when `sum`).
    pub fn share(self, e: &str, sum: bool) -> String {
        match (self.wgsl(), sum) {
            (false, true) => format!("    *share = ncp_row_sum({e});\n"),
            (false, false) => format!("    *share = (double){e};\n"),
            (true, true) => format!("    share = ncp_row_sum(&{e});\n"),
            (true, false) => format!("    share = {e};\n"),
        }
    }

    /// The statement that writes the row's gradient from row array `v`.
    pub fn store_grad(self, v: &str) -> String {
        if self.wgsl() {
            self.each(&format!("ncp_grads[g + u32(c)] = {v}[c];"))
        } else {
            self.each(&format!("g[c] = {v}[c];"))
        }
    }

    /// The translation unit: prelude, helpers, the row functions (`bodies`) and the kernel
    /// that runs candidate k's row function (`bodies[slots[k]]`) on row r. Candidate k reads
    /// its inputs `stride * k` values into the input buffers (0 when every candidate reads the
    /// same batch; the batch's size when each has its own).
    pub fn unit(self, c: usize, bodies: &[String], slots: &[usize]) -> String {
        let mut out = format!(
            "// Generated by ncpc (src/gpu): K candidate losses, loss shares and dL/dy_pred per row.\n{}",
            self.prelude(c)
        );
        // The candidates of each row function, in order.
        let users: Vec<Vec<usize>> = (0..bodies.len())
            .map(|i| (0..slots.len()).filter(|k| slots[*k] == i).collect())
            .collect();
        if self.wgsl() {
            for (k, body) in bodies.iter().enumerate() {
                let _ = write!(
                    out,
                    "fn ncp_row_{k}(i: u32, g: u32, B: i32) -> f32 {{\n    var yp: array<f32, NCP_C>;\n    var yt: array<f32, NCP_C>;\n    for (var c = 0; c < NCP_C; c++) {{ yp[c] = ncp_yp[i + u32(c)]; yt[c] = ncp_yt[i + u32(c)]; }}\n    var share: f32 = 0.0f;\n{body}    return share;\n}}\n\n"
                );
            }
            out += "@compute @workgroup_size(64)\nfn ncp_population(@builtin(global_invocation_id) gid: vec3<u32>) {\n    let r = gid.x;\n    let k = gid.y;\n    if (r >= ncp_p.n) { return; }\n    let i = k * ncp_p.stride + r * u32(NCP_C);\n    let g = (k * ncp_p.n + r) * u32(NCP_C);\n    let B = i32(ncp_p.b);\n    var s: f32 = 0.0f;\n    switch k {\n";
            for (f, ks) in users.iter().enumerate().filter(|(_, ks)| !ks.is_empty()) {
                let cases: Vec<String> = ks.iter().map(|k| format!("{k}u")).collect();
                let _ = writeln!(
                    out,
                    "        case {}: {{ s = ncp_row_{f}(i, g, B); }}",
                    cases.join(", ")
                );
            }
            out += "        default: { return; }\n    }\n    ncp_shares[k * ncp_p.n + r] = s;\n}\n";
        } else {
            for (k, body) in bodies.iter().enumerate() {
                let _ = write!(
                    out,
                    "NCP_FN void ncp_row_{k}(const float* yp, const float* yt, float* g, double* share, long long B) {{\n{body}}}\n\n"
                );
            }
            let _ = write!(
                out,
                "NCP_KERNEL void ncp_population(const float* yp, const float* yt, float* grads, double* shares, long long B, long long stride) {{\n    NCP_GRID(k, r, {n})\n    const float* p = yp + k * stride + r * NCP_C;\n    const float* t = yt + k * stride + r * NCP_C;\n    float* g = grads + ((long long)k * B + r) * NCP_C;\n    double* s = shares + (long long)k * B + r;\n    switch (k) {{\n",
                n = slots.len()
            );
            for (f, ks) in users.iter().enumerate().filter(|(_, ks)| !ks.is_empty()) {
                let cases: String = ks.iter().map(|k| format!("case {k}: ")).collect();
                let _ = writeln!(out, "    {cases}ncp_row_{f}(p, t, g, s, B); break;");
            }
            out += "    default: break;\n    }\n    NCP_GRID_END\n}\n";
        }
        out
    }

    fn prelude(self, c: usize) -> String {
        let head = match self.0 {
            Dialect::Cuda => {
                "#define NCP_FN __device__ static inline\n\
                 #define NCP_KERNEL extern \"C\" __global__\n\
                 #define NCP_GRID(k, r, n) long long k = blockIdx.y; long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; if (r >= B || k >= n) return; {\n\
                 #define NCP_GRID_END }\n\
                 #define NCP_INF __int_as_float(0x7f800000)\n"
            }
            Dialect::HostC => {
                "#include <math.h>\n\
                 #define NCP_FN static inline\n\
                 #define NCP_KERNEL\n\
                 #define NCP_GRID(k, r, n) for (long long k = 0; k < n; k++) for (long long r = 0; r < B; r++) {\n\
                 #define NCP_GRID_END }\n\
                 #define NCP_INF INFINITY\n"
            }
            Dialect::Wgsl => {
                return format!("const NCP_C: i32 = {c};\n{WGSL_BINDINGS}{WGSL_HELPERS}\n");
            }
        };
        format!("{head}#define NCP_C {c}\n{C_HELPERS}\n")
    }
}

/// C's helpers (CUDA and host): transcendentals in double, rounded once; row sums in double.
const C_HELPERS: &str = r#"
NCP_FN float ncp_max(float a, float b) { if (a != a || b != b) return a + b; return a < b ? b : a; }
NCP_FN float ncp_min(float a, float b) { if (a != a || b != b) return a + b; return b < a ? b : a; }
NCP_FN float ncp_relu(float a) { return (a > 0.0f || a != a) ? a : 0.0f; }
NCP_FN float ncp_sign(float a) { return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : a * 0.0f); }
NCP_FN float ncp_abs(float a) { return fabsf(a); }
NCP_FN float ncp_sqrt(float a) { return sqrtf(a); }
NCP_FN float ncp_floor(float a) { return floorf(a); }
NCP_FN float ncp_ceil(float a) { return ceilf(a); }
NCP_FN float ncp_round(float a) { return rintf(a); }
NCP_FN float ncp_exp(float a) { return (float)exp((double)a); }
NCP_FN float ncp_log(float a) { return (float)log((double)a); }
NCP_FN float ncp_sin(float a) { return (float)sin((double)a); }
NCP_FN float ncp_cos(float a) { return (float)cos((double)a); }
NCP_FN float ncp_tan(float a) { return (float)tan((double)a); }
NCP_FN float ncp_asin(float a) { return (float)asin((double)a); }
NCP_FN float ncp_acos(float a) { return (float)acos((double)a); }
NCP_FN float ncp_atan(float a) { return (float)atan((double)a); }
NCP_FN float ncp_tanh(float a) { return (float)tanh((double)a); }
NCP_FN float ncp_sigmoid(float a) { return (float)(1.0 / (1.0 + exp(-(double)a))); }
NCP_FN float ncp_pow(float a, float b) { return (float)pow((double)a, (double)b); }
NCP_FN float ncp_hypot(float a, float b) { return (float)hypot((double)a, (double)b); }
NCP_FN float ncp_rem(float a, float b) { double m = fmod((double)a, (double)b); if (m != 0.0 && ((b < 0.0f) != (m < 0.0))) m += (double)b; return (float)m; }
NCP_FN float ncp_clamp_min(float a, float b) { return a < b ? b : a; }
NCP_FN float ncp_clamp_max(float a, float b) { return a > b ? b : a; }
NCP_FN float ncp_sel(float c, float a, float b) { return c != 0.0f ? a : b; }
NCP_FN long long ncp_isel(float c, long long a, long long b) { return c != 0.0f ? a : b; }
NCP_FN long long ncp_iabs(long long a) { return a < 0 ? -a : a; }
NCP_FN long long ncp_imax(long long a, long long b) { return a < b ? b : a; }
NCP_FN long long ncp_imin(long long a, long long b) { return b < a ? b : a; }
NCP_FN float ncp_b(int c) { return c ? 1.0f : 0.0f; }
NCP_FN double ncp_ovf(double x) { return (x >= 3.4028235677973366e38 || x <= -3.4028235677973366e38) ? (x > 0 ? (double)NCP_INF : -(double)NCP_INF) : x; }
NCP_FN float ncp_scale(float a, double n) { return (float)ncp_ovf((double)a * n); }
NCP_FN double ncp_row_sum(const float* x) { double acc = 0.0; for (int c = 0; c < NCP_C; c++) acc += (double)x[c]; return acc; }
NCP_FN float ncp_row_sum_f(const float* x) { return (float)ncp_ovf(ncp_row_sum(x)); }
NCP_FN float ncp_row_mean_f(const float* x) { return (float)(ncp_ovf(ncp_row_sum(x)) / NCP_C); }
NCP_FN int ncp_row_arg(const float* x, int want_max) { float best = x[0]; int at = 0; for (int c = 0; c < NCP_C; c++) { if (best != best) break; if (x[c] != x[c] || (want_max ? x[c] > best : x[c] < best)) { best = x[c]; at = c; } } return at; }
NCP_FN float ncp_row_std(const float* x) { double m = ncp_row_sum(x) / NCP_C; double ss = 0.0; for (int c = 0; c < NCP_C; c++) ss += ((double)x[c] - m) * ((double)x[c] - m); return (float)sqrt(ss / (NCP_C - 1.0)); }
NCP_FN void ncp_softmax(const float* x, float* out) { float m = -NCP_INF; for (int c = 0; c < NCP_C; c++) { float v = x[c]; m = (v != v || m != m) ? (0.0f/0.0f) : (v > m ? v : m); } double e[NCP_C]; double s = 0.0; for (int c = 0; c < NCP_C; c++) { e[c] = exp((double)x[c] - (double)m); s += e[c]; } for (int c = 0; c < NCP_C; c++) out[c] = (float)(e[c] / s); }
NCP_FN void ncp_mask(const float* x, int want_max, float* out) { int at = ncp_row_arg(x, want_max); for (int c = 0; c < NCP_C; c++) out[c] = c == at ? 1.0f : 0.0f; }
"#;

/// WGSL's inputs and outputs: the batch's rows of this dispatch, K x rows gradients and loss
/// shares, and the sizes (`b`: the whole batch's rows, which `dim<B>` reads; `n`: the rows in
/// these buffers; `stride`: values between two candidates' inputs, 0 for a shared batch).
const WGSL_BINDINGS: &str = r#"struct NcpParams { b: u32, n: u32, stride: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> ncp_yp: array<f32>;
@group(0) @binding(1) var<storage, read> ncp_yt: array<f32>;
@group(0) @binding(2) var<storage, read_write> ncp_grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> ncp_shares: array<f32>;
@group(0) @binding(4) var<uniform> ncp_p: NcpParams;
"#;

/// WGSL's helpers: f32 throughout (WGSL has no f64), NaN tested on the bits (WGSL lets a
/// compiler assume `x != x` is false), the cases where WGSL's built-ins are undefined
/// (log of a negative, pow of a negative base, tanh's overflow) spelled out, and fmod exact
/// (power-of-two multiples of the divisor subtracted, each subtraction exact).
const WGSL_HELPERS: &str = r#"
fn ncp_isnan(a: f32) -> bool { return (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u; }
fn ncp_inf() -> f32 { var u = 0x7f800000u; return bitcast<f32>(u); }
fn ncp_nan() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }
fn ncp_isinf(a: f32) -> bool { return (bitcast<u32>(a) & 0x7fffffffu) == 0x7f800000u; }
fn ncp_add(a: f32, b: f32) -> f32 { if (ncp_isnan(a) || ncp_isnan(b) || (ncp_isinf(a) && ncp_isinf(b) && bitcast<u32>(a) != bitcast<u32>(b))) { return ncp_nan(); } return a + b; }
fn ncp_sub(a: f32, b: f32) -> f32 { if (ncp_isnan(a) || ncp_isnan(b) || (ncp_isinf(a) && ncp_isinf(b) && bitcast<u32>(a) == bitcast<u32>(b))) { return ncp_nan(); } return a - b; }
fn ncp_mul(a: f32, b: f32) -> f32 { if (ncp_isnan(a) || ncp_isnan(b) || (ncp_isinf(a) && b == 0.0f) || (ncp_isinf(b) && a == 0.0f)) { return ncp_nan(); } return a * b; }
fn ncp_div(a: f32, b: f32) -> f32 { if (ncp_isnan(a) || ncp_isnan(b) || (a == 0.0f && b == 0.0f) || (ncp_isinf(a) && ncp_isinf(b))) { return ncp_nan(); } return a / b; }
fn ncp_b(c: bool) -> f32 { return select(0.0f, 1.0f, c); }
fn ncp_max(a: f32, b: f32) -> f32 { if (ncp_isnan(a) || ncp_isnan(b)) { return ncp_nan(); } return select(a, b, a < b); }
fn ncp_min(a: f32, b: f32) -> f32 { if (ncp_isnan(a) || ncp_isnan(b)) { return ncp_nan(); } return select(a, b, b < a); }
fn ncp_relu(a: f32) -> f32 { return select(0.0f, a, a > 0.0f || ncp_isnan(a)); }
fn ncp_sign(a: f32) -> f32 { if (a > 0.0f) { return 1.0f; } if (a < 0.0f) { return -1.0f; } return a * 0.0f; }
fn ncp_abs(a: f32) -> f32 { return abs(a); }
fn ncp_sqrt(a: f32) -> f32 { if (a < 0.0f) { return ncp_nan(); } return sqrt(a); }
fn ncp_floor(a: f32) -> f32 { return floor(a); }
fn ncp_ceil(a: f32) -> f32 { return ceil(a); }
fn ncp_round(a: f32) -> f32 { return round(a); }
fn ncp_exp(a: f32) -> f32 { if (ncp_isnan(a)) { return a; } if (a > 88.8f) { return ncp_inf(); } if (a < -104.0f) { return 0.0f; } return exp(a); }
fn ncp_log(a: f32) -> f32 { if (ncp_isnan(a) || a < 0.0f) { return ncp_nan(); } if (a == 0.0f) { return -ncp_inf(); } if (a == ncp_inf()) { return a; } return log(a); }
fn ncp_sin(a: f32) -> f32 { return sin(a); }
fn ncp_cos(a: f32) -> f32 { return cos(a); }
fn ncp_tan(a: f32) -> f32 { return tan(a); }
// atan, asin and acos by our own reduction and series (some drivers' built-ins are 1e-4
// approximations): |x| > 1 -> pi/2 - atan(1/x); |x| > tan(pi/8) -> pi/4 + atan((x-1)/(x+1));
// then the odd series to x^17 (error below 2e-8 for |x| <= 0.4143).
fn ncp_atan_small(t: f32) -> f32 {
    let u = t * t;
    var p = -1.0f / 15.0f;
    p = p * u + 1.0f / 13.0f; p = p * u - 1.0f / 11.0f; p = p * u + 1.0f / 9.0f; p = p * u - 1.0f / 7.0f;
    p = p * u + 1.0f / 5.0f; p = p * u - 1.0f / 3.0f;
    let q = (1.0f / 17.0f) * u * u * u * u * u * u * u * u;
    return t + t * u * p + t * q;
}
fn ncp_atan(a: f32) -> f32 {
    if (ncp_isnan(a)) { return a; }
    let x = abs(a);
    var r: f32;
    if (x > 1.0f) {
        let y = 1.0f / x;
        if (y > 0.41421357f) { r = 0.7853982f + ncp_atan_small((y - 1.0f) / (y + 1.0f)); } else { r = ncp_atan_small(y); }
        r = 1.5707964f - r;
    } else if (x > 0.41421357f) { r = 0.7853982f + ncp_atan_small((x - 1.0f) / (x + 1.0f)); }
    else { r = ncp_atan_small(x); }
    return select(r, -r, a < 0.0f);
}
fn ncp_asin(a: f32) -> f32 {
    if (ncp_isnan(a) || abs(a) > 1.0f) { return ncp_nan(); }
    if (abs(a) == 1.0f) { return a * 1.5707964f; }
    return ncp_atan(a / sqrt((1.0f - a) * (1.0f + a)));
}
fn ncp_acos(a: f32) -> f32 {
    if (ncp_isnan(a) || abs(a) > 1.0f) { return ncp_nan(); }
    if (a == -1.0f) { return 3.1415927f; }
    return 2.0f * ncp_atan(sqrt((1.0f - a) / (1.0f + a)));
}
fn ncp_tanh(a: f32) -> f32 { if (a > 9.5f) { return 1.0f; } if (a < -9.5f) { return -1.0f; } return tanh(a); }
fn ncp_sigmoid(a: f32) -> f32 { return 1.0f / (1.0f + ncp_exp(-a)); }
fn ncp_is_int(b: f32) -> bool { return floor(b) == b; }
fn ncp_is_odd(b: f32) -> bool { return ncp_is_int(b) && abs(b) < 16777216.0f && (i32(abs(b)) & 1) == 1; }
fn ncp_pow(a: f32, b: f32) -> f32 {
    if (b == 0.0f || a == 1.0f) { return 1.0f; }
    if (ncp_isnan(a) || ncp_isnan(b)) { return ncp_nan(); }
    let neg = a < 0.0f || (a == 0.0f && bitcast<u32>(a) != 0u);
    if (a < 0.0f && !ncp_is_int(b) && abs(b) != ncp_inf()) { return ncp_nan(); }
    let x = abs(a);
    var r: f32;
    if (x == 0.0f) { r = select(0.0f, ncp_inf(), b < 0.0f); }
    else if (x == ncp_inf()) { r = select(ncp_inf(), 0.0f, b < 0.0f); }
    else if (abs(b) == ncp_inf()) { r = select(select(0.0f, ncp_inf(), b > 0.0f), select(ncp_inf(), 0.0f, b > 0.0f), x < 1.0f); if (x == 1.0f) { r = 1.0f; } }
    else { r = exp2(b * log2(x)); }
    if (neg && ncp_is_odd(b)) { return -r; }
    return r;
}
fn ncp_hypot(a: f32, b: f32) -> f32 {
    if (abs(a) == ncp_inf() || abs(b) == ncp_inf()) { return ncp_inf(); }
    if (ncp_isnan(a) || ncp_isnan(b)) { return ncp_nan(); }
    let m = max(abs(a), abs(b));
    if (m == 0.0f) { return 0.0f; }
    let p = a / m; let q = b / m;
    return m * sqrt(p * p + q * q);
}
fn ncp_fmod(a: f32, b: f32) -> f32 {
    if (ncp_isnan(a) || ncp_isnan(b) || b == 0.0f || abs(a) == ncp_inf()) { return ncp_nan(); }
    let y = abs(b);
    if (y == ncp_inf()) { return a; }
    var x = abs(a);
    for (var i = 0; i < 300 && x >= y; i++) {
        let e = frexp(x).exp - frexp(y).exp;
        var t = ldexp(y, e);
        if (t > x) { t = ldexp(y, e - 1); }
        x = x - t;
    }
    return select(x, -x, a < 0.0f || (a == 0.0f && bitcast<u32>(a) != 0u));
}
fn ncp_rem(a: f32, b: f32) -> f32 { var m = ncp_fmod(a, b); if (m != 0.0f && !ncp_isnan(m) && ((b < 0.0f) != (m < 0.0f))) { m = m + b; } return m; }
fn ncp_clamp_min(a: f32, b: f32) -> f32 { return select(a, b, a < b); }
fn ncp_clamp_max(a: f32, b: f32) -> f32 { return select(a, b, a > b); }
fn ncp_sel(c: f32, a: f32, b: f32) -> f32 { return select(b, a, c != 0.0f); }
fn ncp_isel(c: f32, a: i32, b: i32) -> i32 { return select(b, a, c != 0.0f); }
fn ncp_iabs(a: i32) -> i32 { return select(a, -a, a < 0); }
fn ncp_imax(a: i32, b: i32) -> i32 { return select(a, b, a < b); }
fn ncp_imin(a: i32, b: i32) -> i32 { return select(a, b, b < a); }
fn ncp_scale(a: f32, n: f32) -> f32 { return a * n; }
fn ncp_row_sum(x: ptr<function, array<f32, NCP_C>>) -> f32 {
    // Compensated (Kahan-Babuska) summation: close to the interpreter's f64 sum rounded once.
    var acc = 0.0f; var err = 0.0f;
    for (var c = 0; c < NCP_C; c++) {
        let v = (*x)[c];
        let t = acc + v;
        if (abs(acc) >= abs(v)) { err += (acc - t) + v; } else { err += (v - t) + acc; }
        acc = t;
    }
    if (ncp_isnan(acc) || ncp_isinf(acc)) { return acc; }
    return acc + err;
}
fn ncp_row_sum_f(x: ptr<function, array<f32, NCP_C>>) -> f32 { return ncp_row_sum(x); }
fn ncp_row_mean_f(x: ptr<function, array<f32, NCP_C>>) -> f32 { return ncp_row_sum(x) / f32(NCP_C); }
fn ncp_row_arg(x: ptr<function, array<f32, NCP_C>>, want_max: i32) -> i32 {
    var best = (*x)[0]; var at = 0;
    for (var c = 0; c < NCP_C; c++) {
        if (ncp_isnan(best)) { break; }
        let v = (*x)[c];
        if (ncp_isnan(v) || select((v < best), (v > best), want_max == 1)) { best = v; at = c; }
    }
    return at;
}
fn ncp_row_std(x: ptr<function, array<f32, NCP_C>>) -> f32 {
    let m = ncp_row_sum(x) / f32(NCP_C);
    var ss = 0.0f;
    for (var c = 0; c < NCP_C; c++) { let d = (*x)[c] - m; ss += d * d; }
    return sqrt(ss / (f32(NCP_C) - 1.0f));
}
fn ncp_softmax(x: ptr<function, array<f32, NCP_C>>, out: ptr<function, array<f32, NCP_C>>) {
    var m = -ncp_inf();
    for (var c = 0; c < NCP_C; c++) { let v = (*x)[c]; if (ncp_isnan(v) || ncp_isnan(m)) { m = ncp_nan(); } else if (v > m) { m = v; } }
    var s = 0.0f;
    for (var c = 0; c < NCP_C; c++) { let e = ncp_exp((*x)[c] - m); (*out)[c] = e; s += e; }
    for (var c = 0; c < NCP_C; c++) { (*out)[c] = (*out)[c] / s; }
}
fn ncp_mask(x: ptr<function, array<f32, NCP_C>>, want_max: i32, out: ptr<function, array<f32, NCP_C>>) {
    let at = ncp_row_arg(x, want_max);
    for (var c = 0; c < NCP_C; c++) { (*out)[c] = select(0.0f, 1.0f, c == at); }
}
"#;
