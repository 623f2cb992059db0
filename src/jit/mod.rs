//! The Cranelift JIT: one native function per genome computing the loss and its gradient in
//! fused loops (see [`plan`] for the schedule and [`codegen`] for the lowering).
//!
//! Kernels are cached by the structure of their optimized gradient IR with the f32 constants
//! taken out: constants are passed at run time, so genomes that differ only in constants
//! share one compiled kernel.

mod codegen;
mod exactmath;
mod fastmath;
mod math;
pub mod paths;
pub mod plan;

use codegen::{Gen, Layout, MathRefs, const_order, signature};
use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use ncp_ir::{ConstVal, Function, Imm};
use std::collections::HashMap;

pub use plan::Unsupported;

/// Errors of the JIT.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// The function uses something the JIT does not compile; run it with the interpreter.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// Cranelift failed (a bug in ncpc's lowering).
    #[error("cranelift: {0}")]
    Codegen(String),
    /// The inputs do not fit the kernel.
    #[error("inputs: {0}")]
    Inputs(String),
}

type KernelFn = unsafe extern "C" fn(*const *mut f32, *mut i64, *const f32);

/// A compiled kernel.
pub struct Kernel {
    func: KernelFn,
    layout: Layout,
    /// Scratch buffers, kept between calls (every kernel writes a buffer before reading it).
    scratch: std::cell::RefCell<Vec<Vec<f32>>>,
    /// Whether blocks of rows can run independently.
    separable: bool,
    /// Cranelift IR of the kernel, for `--emit clif` (empty unless [`Jit::keep_listings`]).
    pub clif: String,
    /// Machine code listing, for `--emit asm` (empty unless [`Jit::keep_listings`]).
    pub asm: String,
}

/// How kernels compute transcendentals.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum MathMode {
    /// exp, log, ... computed in f64 and rounded once, exactly as the interpreter does: the
    /// JIT is then bit-equal to the interpreter.
    #[default]
    Exact,
    /// exp, log and sigmoid by inline f32 polynomials (error stated in docs/jit.md); other
    /// functions as in Exact.
    Fast,
}

/// How much code a kernel gets: the first compile of a loss is cheap; a loss that runs many
/// times is worth a second, larger kernel. Both tiers compute the same values bit for bit
/// (same operations in the same order), so switching tiers never changes a result.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Tier {
    /// Scalar loops in exact math, exp/log/sigmoid by calls (on whole buffers in the CPU's
    /// widest lanes where it has lanes wider than Cranelift's, else per element): the
    /// smallest kernel, the fastest to compile (fast math always runs its groups in f32x4).
    #[default]
    Quick,
    /// Fused groups and softmax rows in f32x4 lanes, exp/log/sigmoid by calls on whole
    /// buffers where the CPU has wide lanes, else inlined (in f64x2 lanes in exact math):
    /// more code to compile, less time per element.
    Hot,
}

/// The JIT compiler with its kernel cache.
pub struct Jit {
    /// How transcendentals are computed (fixed at construction: see [`Jit::with_math`]).
    math: MathMode,
    module: JITModule,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    /// The math routines kernels may call; each kernel imports those it uses.
    math_refs: MathRefs,
    /// Kernels by what they were compiled from, as indices into `kernels`.
    cache: HashMap<KernelKey, usize>,
    /// Every kernel compiled (kept when the cache is emptied: compiled losses still use them).
    kernels: Vec<Kernel>,
    /// This compiler among the process's compilers (compiled losses carry it).
    id: u64,
    counter: u32,
    /// Kernels compiled (cache misses).
    pub compiled: usize,
    /// The tier [`Jit::compile_loss`] compiles in ([`Tier::Quick`] unless set).
    pub tier: Tier,
    /// Keep each kernel's CLIF and machine-code listings (`ncpc compile --emit clif|asm`);
    /// off by default: printing them costs more than compiling a small kernel.
    pub keep_listings: bool,
    /// Kernels run exp/log/sigmoid of buffers and softmax rows as calls on whole buffers
    /// ([`ncp_ir::vmath`]: exact values in the CPU's widest lanes) instead of a call per
    /// element (quick tier) or inline f64x2 sequences (hot tier). On by default when the CPU
    /// has lanes wider than Cranelift's ([`ncp_ir::vmath::wide`]); either way the values are
    /// the same.
    pub wide_calls: bool,
}

impl Jit {
    /// A JIT for the host machine.
    pub fn new() -> Result<Jit, JitError> {
        let mut flags = settings::builder();
        let set = |fl: &mut settings::Builder, k: &str, v: &str| {
            fl.set(k, v).map_err(|e| JitError::Codegen(e.to_string()))
        };
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "opt_level", "speed")?;
        // Cranelift's IR verifier re-checks every kernel: on in debug builds and tests, off in
        // release builds, where it costs a tenth of a small kernel's compile time.
        set(
            &mut flags,
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )?;
        let isa = cranelift_native::builder()
            .map_err(|e| JitError::Codegen(format!("host machine not supported: {e}")))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        for (name, ptr, _) in math::symbols() {
            jb.symbol(name, ptr);
        }
        let mut module = JITModule::new(jb);
        let mut ids = HashMap::new();
        for (name, _, arity) in math::symbols() {
            use cranelift_codegen::ir::{AbiParam, types};
            let mut sig = module.make_signature();
            if name.starts_with("ncp_v") {
                sig.params
                    .extend((0..arity).map(|_| AbiParam::new(types::I64)));
            } else {
                let ty = if name.ends_with("64") {
                    types::F64
                } else {
                    types::F32
                };
                sig.params.extend((0..arity).map(|_| AbiParam::new(ty)));
                sig.returns.push(AbiParam::new(ty));
            }
            let id = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(|e| JitError::Codegen(e.to_string()))?;
            ids.insert(name, (id.as_u32(), sig));
        }
        let ctx = module.make_context();
        Ok(Jit {
            math: MathMode::Exact,
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            math_refs: MathRefs { by_name: ids },
            cache: HashMap::new(),
            kernels: Vec::new(),
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            counter: 0,
            compiled: 0,
            tier: Tier::Quick,
            keep_listings: false,
            wide_calls: ncp_ir::vmath::wide(),
        })
    }

    /// Empty the kernel cache (the compiled code stays mapped): the next compile of any
    /// function is a miss. For measuring compile latency.
    pub fn forget_kernels(&mut self) {
        self.cache.clear();
    }

    /// Why the JIT does not take `f`, if it does not.
    pub fn check(f: &Function) -> Result<(), JitError> {
        plan::plan(f).map(|_| ()).map_err(JitError::from)
    }

    /// The index of the kernel for a straight-line gradient function (compiled on first
    /// use).
    ///
    /// `f` must be in [`canonical_form`], so that functions with one cache key also number
    /// their constants the same way.
    fn kernel(&mut self, key: KernelKey, f: &Function) -> Result<usize, JitError> {
        if let Some(&k) = self.cache.get(&key) {
            return Ok(k);
        }
        let k = self.compile(f, key.tier, key.wide_calls)?;
        self.kernels.push(k);
        self.cache.insert(key, self.kernels.len() - 1);
        Ok(self.kernels.len() - 1)
    }

    /// Apply a unary elementwise op to `xs` with this JIT's arithmetic (for measuring the
    /// error of [`MathMode::Fast`] against the exact results).
    pub fn map_unary(&mut self, op: ncp_ir::Opcode, xs: &[f32]) -> Result<Vec<f32>, JitError> {
        use ncp_ir::{Axis, Terminator, Type};
        let n = xs.len();
        let ty = Type::new(
            ncp_ir::DType::F32,
            vec![ncp_ir::Dim::Fixed(1), ncp_ir::Dim::C], // one row: the last dim runs four lanes at a time in fast math
        );
        let (mut f, b) = Function::new("map", &[ty.clone(), ty.clone()], vec![Type::f32(), ty]);
        let x = f.blocks[b].params[0];
        let ir = |e: ncp_ir::IrError| JitError::Codegen(e.to_string());
        let y = f.ins(b, op, Imm::None, &[x]).map_err(ir)?;
        let s = f
            .ins(b, ncp_ir::Opcode::Sum, Imm::Axis(Axis::All), &[y])
            .map_err(ir)?;
        f.set_term(b, Terminator::Return(vec![s, y]));
        let (structure, func) = canonical_form(&f);
        // The inline sequences (what this measures), not the calls on whole buffers.
        let key = KernelKey {
            math: self.math,
            tier: Tier::Hot,
            wide_calls: false,
            structure,
        };
        let mut out = vec![0f32; n];
        let k = self.kernel(key, &func)?;
        self.kernels[k].run(&[], xs, xs, 1, n, &mut out)?;
        Ok(out)
    }

    /// A JIT computing transcendentals per `math`.
    pub fn with_math(math: MathMode) -> Result<Jit, JitError> {
        let mut j = Jit::new()?;
        j.math = math;
        Ok(j)
    }

    /// Compile `f` in `tier`, with or without wide calls (in both tiers: the quick tier's
    /// alternative is a call per element; exact values in either math mode, and in fast math
    /// also faster than the inline f32 polynomials).
    fn compile(&mut self, f: &Function, tier: Tier, vcalls: bool) -> Result<Kernel, JitError> {
        let plan = plan::plan_for(f, vcalls)?;
        self.counter += 1;
        let name = format!("ncp_kernel_{}", self.counter);
        let sig = signature(self.module.isa().default_call_conv());
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &sig)
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        self.ctx.clear();
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let p = b.block_params(entry).to_vec();
            let layout = {
                let mut g = Gen::new(f, &plan, &mut b, &self.math_refs, [p[0], p[1], p[2]]);
                g.fast = self.math == MathMode::Fast;
                g.simd = g.fast || tier == Tier::Hot;
                g.vcalls = vcalls;
                g.carry = carried_loss(f, self.math);
                g.assign_slots();
                g.preload_bases();
                g.emit();
                if let Some(what) = g.unsupported.take() {
                    return Err(JitError::Unsupported(Unsupported(what)));
                }
                g.layout.clone()
            };
            b.ins_return();
            b.finalize(self.module.target_config());
            self.ctx.set_disasm(self.keep_listings);
            let clif = if self.keep_listings {
                self.ctx.func.display().to_string()
            } else {
                String::new()
            };
            self.module
                .define_function(id, &mut self.ctx)
                .map_err(|e| JitError::Codegen(format!("{e:?}")))?;
            let asm = if self.keep_listings {
                self.ctx
                    .compiled_code()
                    .and_then(|c| c.vcode.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            self.module.clear_context(&mut self.ctx);
            self.module
                .finalize_definitions()
                .map_err(|e| JitError::Codegen(e.to_string()))?;
            let ptr = self.module.get_finalized_function(id);
            // SAFETY: the function was just compiled with the `signature()` ABI.
            let func = unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) };
            self.compiled += 1;
            Ok(Kernel {
                func,
                layout,
                scratch: Default::default(),
                separable: plan::row_separable(f),
                clif,
                asm,
            })
        }
    }
}

trait InsReturn {
    fn ins_return(&mut self);
}
impl InsReturn for FunctionBuilder<'_> {
    fn ins_return(&mut self) {
        use cranelift_codegen::ir::InstBuilder;
        self.ins().return_(&[]);
    }
}

/// What a kernel is compiled from: the math, the tier, whether it makes wide calls, and the
/// structure of its function's [`canonical_form`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KernelKey {
    math: MathMode,
    tier: Tier,
    wide_calls: bool,
    structure: Vec<u64>,
}

/// The cache key of `f` (the structure of its canonical form with every run-time constant set
/// to zero: [`ncp_ir::passes::hash::structure_key`]) and `f` in that same canonical order with
/// its own constants. Two functions with one key then run one kernel, their constants in the
/// same slots.
pub fn canonical_form(f: &Function) -> (Vec<u64>, Function) {
    let runtime = const_order(f);
    let mut skeleton = f.clone();
    for &i in &runtime {
        skeleton.insts[i].imm = Imm::Const(ConstVal::F32(0.0));
    }
    ncp_ir::passes::canon::canon(&mut skeleton);
    let key = ncp_ir::passes::hash::structure_key(&skeleton);
    // The skeleton keeps the instruction ids of `f`: put the constants back.
    let mut real = skeleton;
    for &i in &runtime {
        real.insts[i].imm = f.insts[i].imm.clone();
    }
    (key, real)
}

impl Kernel {
    /// Number of f32 constants the kernel reads.
    pub fn const_count(&self) -> usize {
        self.layout.consts.len()
    }

    /// Number of gradient elements for inputs of shape `[b, c]` (0 when the kernel returns
    /// no gradient).
    pub fn grad_len(&self, b: usize, c: usize) -> usize {
        self.layout.grad.as_deref().map_or(0, |s| size(s, b, c))
    }

    /// Check that the buffers fit this kernel and the shape `[b, c]`.
    fn check_inputs(
        &self,
        consts: &[f32],
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &[f32],
    ) -> Result<(), JitError> {
        if consts.len() != self.layout.consts.len() {
            return Err(JitError::Inputs(format!(
                "{} constants given, the kernel takes {}",
                consts.len(),
                self.layout.consts.len()
            )));
        }
        if b == 0 || c == 0 || y_pred.len() != b * c || y_true.len() != b * c {
            return Err(JitError::Inputs(format!(
                "y_pred and y_true must both hold {b} x {c} values"
            )));
        }
        if grad.len() != self.grad_len(b, c) {
            return Err(JitError::Inputs(format!(
                "the gradient buffer must hold {} values",
                self.grad_len(b, c)
            )));
        }
        Ok(())
    }

    /// Run on row-major inputs of shape `[b, c]`, writing the gradient (if any) to `grad`.
    /// Returns the loss.
    pub fn run(
        &self,
        consts: &[f32],
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut [f32],
    ) -> Result<f32, JitError> {
        let rows = if self.layout.carries_loss && b.saturating_mul(c) >= SEQUENTIAL_BLOCKS_FROM {
            (SEQUENTIAL_BLOCK_ELEMENTS / c).max(1)
        } else {
            b
        };
        self.run_in_row_blocks(consts, y_pred, y_true, b, c, grad, rows)
    }

    /// Whether the kernel carries its loss from one block of rows to the next
    /// ([`Kernel::run_in_row_blocks`]).
    pub fn carries_loss(&self) -> bool {
        self.layout.carries_loss
    }

    /// [`Kernel::run`] as consecutive calls on blocks of `block_rows` rows, each continuing
    /// the previous one's loss sum: the same operations in the same order as one call, so the
    /// loss and the gradient are bit-identical to it, with the values stored between stages
    /// a block in size. `run` does this for large batches; a kernel that does not carry its
    /// loss, or `block_rows >= b`, runs as one call.
    #[allow(clippy::too_many_arguments)]
    pub fn run_in_row_blocks(
        &self,
        consts: &[f32],
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut [f32],
        block_rows: usize,
    ) -> Result<f32, JitError> {
        self.check_inputs(consts, y_pred, y_true, b, c, grad)?;
        let mut scratch = self.scratch.borrow_mut();
        if !self.layout.carries_loss || block_rows >= b {
            let (loss, _) = call(
                self.func,
                &self.layout,
                &mut scratch,
                consts,
                y_pred,
                y_true,
                b,
                c,
                b,
                grad,
                0.0,
            );
            return Ok(loss);
        }
        let per = block_rows.max(1);
        let (mut loss, mut carry) = (0.0, 0.0);
        let mut r0 = 0;
        while r0 < b {
            let r1 = (r0 + per).min(b);
            let g: &mut [f32] = if grad.is_empty() {
                &mut []
            } else {
                &mut grad[r0 * c..r1 * c]
            };
            (loss, carry) = call(
                self.func,
                &self.layout,
                &mut scratch,
                consts,
                &y_pred[r0 * c..r1 * c],
                &y_true[r0 * c..r1 * c],
                r1 - r0,
                c,
                b,
                g,
                carry,
            );
            r0 = r1;
        }
        Ok(loss)
    }

    /// [`Kernel::run`] over blocks of `block_rows` rows in parallel (rayon), when the kernel
    /// is row-separable (`plan::row_separable`) and the input has more than one block;
    /// otherwise the same as `run`. The gradient is bit-identical to `run`'s; the loss is the
    /// sum, in block order, of each block's share, so it can differ from `run`'s in the last
    /// bits, but not with the number of threads: the blocks are fixed by `block_rows`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_blocks(
        &self,
        consts: &[f32],
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut [f32],
        block_rows: usize,
    ) -> Result<f32, JitError> {
        use rayon::prelude::*;
        if !self.separable || block_rows == 0 || b <= block_rows {
            return self.run(consts, y_pred, y_true, b, c, grad);
        }
        self.check_inputs(consts, y_pred, y_true, b, c, grad)?;
        let (func, layout) = (self.func, &self.layout);
        // One gradient slice per block (empty ones when the loss has no gradient).
        let nblocks = b.div_ceil(block_rows);
        let mut slices: Vec<&mut [f32]> = if grad.is_empty() {
            (0..nblocks).map(|_| <&mut [f32]>::default()).collect()
        } else {
            grad.chunks_mut(block_rows * c).collect()
        };
        let partial: Vec<f32> = slices
            .par_iter_mut()
            .enumerate()
            .map(|(k, g)| {
                let (r0, r1) = (k * block_rows, ((k + 1) * block_rows).min(b));
                let rows = r0 * c..r1 * c;
                call(
                    func,
                    layout,
                    &mut Vec::new(),
                    consts,
                    &y_pred[rows.clone()],
                    &y_true[rows],
                    r1 - r0,
                    c,
                    b,
                    g,
                    0.0,
                )
                .0
            })
            .collect();
        Ok(partial.iter().map(|x| *x as f64).sum::<f64>() as f32)
    }

    /// Whether [`Kernel::run_blocks`] can split the rows.
    pub fn is_row_separable(&self) -> bool {
        self.separable
    }
}

/// The loss reduction a kernel of `f` may carry from one block of rows to the next
/// ([`codegen::Layout::carries_loss`]): in exact math, the sum or mean that a row-separable
/// function returns as its loss.
fn carried_loss(f: &Function, math: MathMode) -> Option<ncp_ir::Inst> {
    if math != MathMode::Exact || !plan::row_separable(f) {
        return None;
    }
    let ncp_ir::Terminator::Return(rets) = &f.blocks[f.entry()].term else {
        return None;
    };
    let ncp_ir::ValueDef::Inst(i) = f.values[*rets.first()?].def else {
        return None;
    };
    matches!(f.insts[i].op, ncp_ir::Opcode::Sum | ncp_ir::Opcode::Mean).then_some(i)
}

/// Batches of at least this many elements run in consecutive blocks of rows when the kernel
/// carries its loss, so that the values stored between stages stay in the core's caches.
pub const SEQUENTIAL_BLOCKS_FROM: usize = 1 << 16;
/// About how many elements such a block holds (64 KiB per f32 buffer).
pub const SEQUENTIAL_BLOCK_ELEMENTS: usize = 1 << 14;

/// Call a kernel on `rows` rows of a batch of `total` rows, its loss accumulator starting
/// from `carry` (`0.0` for a whole batch, or a kernel that carries nothing). Returns the loss
/// and the unfinished accumulator to carry on. The caller has checked the sizes.
#[allow(clippy::too_many_arguments)]
fn call(
    func: KernelFn,
    layout: &Layout,
    scratch: &mut Vec<Vec<f32>>,
    consts: &[f32],
    y_pred: &[f32],
    y_true: &[f32],
    rows: usize,
    c: usize,
    total: usize,
    grad: &mut [f32],
    carry: f64,
) -> (f32, f64) {
    let mut dims = [
        rows as i64,
        c as i64,
        total as i64,
        carry.to_bits() as i64,
        0,
    ];
    let mut loss = [0f32; 1];
    scratch.resize(layout.scratch.len(), Vec::new());
    for (buf, shape) in scratch.iter_mut().zip(&layout.scratch) {
        let n = size(shape, rows, c).max(1);
        if buf.len() != n {
            buf.resize(n, 0.0);
        }
    }
    // The kernel only reads the inputs; the casts to *mut satisfy the uniform ABI.
    let mut ptrs: Vec<*mut f32> = vec![
        y_pred.as_ptr() as *mut f32,
        y_true.as_ptr() as *mut f32,
        loss.as_mut_ptr(),
        grad.as_mut_ptr(),
    ];
    ptrs.extend(scratch.iter_mut().map(|s| s.as_mut_ptr()));
    // SAFETY: every buffer has the size the kernel's layout asks for at these dims, and the
    // kernel writes only to slots 2 and up.
    // `dims` is passed from a mutable borrow: a kernel that carries its loss writes `dims[4]`.
    unsafe { func(ptrs.as_ptr(), dims.as_mut_ptr(), consts.as_ptr()) };
    (loss[0], f64::from_bits(dims[4] as u64))
}

fn size(shape: &[ncp_ir::Dim], b: usize, c: usize) -> usize {
    shape
        .iter()
        .map(|d| match d {
            ncp_ir::Dim::B => b,
            ncp_ir::Dim::C => c,
            ncp_ir::Dim::Fixed(n) => *n as usize,
        })
        .product()
}

/// A loss compiled for the JIT: its optimized gradient IR, the kernel's cache key, and the
/// constants to pass.
#[derive(Clone, Debug)]
pub struct CompiledLoss {
    /// `(y_pred, y_true) -> (loss, grad)` (or `-> loss` when there is no gradient).
    pub grad_ir: Function,
    /// Whether the loss depends on y_pred.
    pub has_grad: bool,
    /// The tier its kernel was compiled in.
    pub tier: Tier,
    /// The kernel's index in the compiler that compiled it, and that compiler.
    kernel: usize,
    jit: u64,
    consts: Vec<f32>,
}

impl Jit {
    /// Prepare a loss function for repeated calls: build and optimize its gradient IR and
    /// compile (or reuse) its kernel. `Ok(None)` when the JIT does not take it (control flow
    /// whose path depends on the inputs, see [`paths`]; a program that always faults; an op
    /// it does not compile).
    pub fn compile_loss(&mut self, f: &Function) -> Result<Option<CompiledLoss>, JitError> {
        self.compile_loss_tier(f, self.tier)
    }

    /// [`Jit::compile_loss`] for the given [`Tier`].
    pub fn compile_loss_tier(
        &mut self,
        f: &Function,
        tier: Tier,
    ) -> Result<Option<CompiledLoss>, JitError> {
        // Control flow whose path is the same for every input compiles as that path.
        let Some(path) = paths::static_path(f) else {
            return Ok(None);
        };
        let f: &Function = &path;
        if !matches!(f.blocks[f.entry()].term, ncp_ir::Terminator::Return(_)) {
            return Ok(None);
        }
        let mut g = ncp_ir::passes::gradient(f).map_err(|e| JitError::Codegen(e.to_string()))?;
        ncp_ir::passes::optimize(&mut g.func, Default::default())
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        let (structure, func) = canonical_form(&g.func);
        let key = KernelKey {
            math: self.math,
            tier,
            wide_calls: self.wide_calls,
            structure,
        };
        let kernel = match self.kernel(key, &func) {
            Ok(k) => k,
            Err(JitError::Unsupported(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let consts = const_values(&func);
        Ok(Some(CompiledLoss {
            kernel,
            jit: self.id,
            tier,
            grad_ir: func,
            has_grad: g.has_grad,
            consts,
        }))
    }

    /// [`Jit::run`] split into blocks of `block_rows` rows run in parallel with rayon, for
    /// losses whose kernel is row-separable (see [`Kernel::run_blocks`]).
    #[allow(clippy::too_many_arguments)]
    pub fn run_blocks(
        &self,
        l: &CompiledLoss,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut [f32],
        block_rows: usize,
    ) -> Result<f32, JitError> {
        self.kernel_of(l)
            .run_blocks(&l.consts, y_pred, y_true, b, c, grad, block_rows)
    }

    /// [`Kernel::run_in_row_blocks`] for a compiled loss: consecutive blocks of `block_rows`
    /// rows, bit-identical to [`Jit::run`].
    #[allow(clippy::too_many_arguments)]
    pub fn run_in_row_blocks(
        &self,
        l: &CompiledLoss,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut [f32],
        block_rows: usize,
    ) -> Result<f32, JitError> {
        self.kernel_of(l)
            .run_in_row_blocks(&l.consts, y_pred, y_true, b, c, grad, block_rows)
    }

    /// The kernel of a compiled loss.
    ///
    /// # Panics
    /// If `l` was compiled by another [`Jit`] (a programming error: a compiled loss runs on
    /// the compiler that compiled it).
    pub fn kernel_of(&self, l: &CompiledLoss) -> &Kernel {
        assert_eq!(
            l.jit, self.id,
            "a compiled loss runs on the JIT that compiled it"
        );
        &self.kernels[l.kernel]
    }

    /// Run a compiled loss on row-major `[b, c]` inputs. Returns the loss; the gradient goes
    /// to `grad` (length `b * c` when the loss has one, else 0).
    pub fn run(
        &self,
        l: &CompiledLoss,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut [f32],
    ) -> Result<f32, JitError> {
        self.kernel_of(l).run(&l.consts, y_pred, y_true, b, c, grad)
    }
}

/// The f32 constants of `f` in kernel order.
pub fn const_values(f: &Function) -> Vec<f32> {
    const_order(f)
        .iter()
        .map(|i| match f.insts[*i].imm {
            Imm::Const(ConstVal::F32(x)) => x,
            _ => 0.0,
        })
        .collect()
}
