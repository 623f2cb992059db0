//! The Cranelift JIT: one native function per genome computing the loss and its gradient in
//! fused loops (see [`plan`] for the schedule and [`codegen`] for the lowering).
//!
//! Kernels are cached by the structure of their optimized gradient IR with the f32 constants
//! taken out: constants are passed at run time, so genomes that differ only in constants
//! share one compiled kernel.

mod codegen;
mod math;
mod ops;
pub mod plan;

use crate::loss::LossValue;
use codegen::{Gen, Layout, MathRefs, const_order, signature};
use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use ncp_ir::passes::canonical_hash;
use ncp_ir::tensor::Tensor;
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

type KernelFn = unsafe extern "C" fn(*const *mut f32, *const i64, *const f32);

/// A compiled kernel.
pub struct Kernel {
    func: KernelFn,
    layout: Layout,
    /// Cranelift IR of the kernel, for `--emit clif`.
    pub clif: String,
    /// Machine code listing, for `--emit asm`.
    pub asm: String,
}

/// The JIT compiler with its kernel cache.
pub struct Jit {
    module: JITModule,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    math: HashMap<&'static str, cranelift_module::FuncId>,
    cache: HashMap<String, Kernel>,
    counter: u32,
    /// Kernels compiled (cache misses).
    pub compiled: usize,
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
            let ty = if name.ends_with("64") {
                types::F64
            } else {
                types::F32
            };
            let mut sig = module.make_signature();
            for _ in 0..arity {
                sig.params.push(AbiParam::new(ty));
            }
            sig.returns.push(AbiParam::new(ty));
            let id = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(|e| JitError::Codegen(e.to_string()))?;
            ids.insert(name, id);
        }
        let ctx = module.make_context();
        Ok(Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            math: ids,
            cache: HashMap::new(),
            counter: 0,
            compiled: 0,
        })
    }

    /// The kernel for a straight-line gradient function (compiled on first use).
    pub fn kernel(&mut self, f: &Function) -> Result<&Kernel, JitError> {
        let key = structure_key(f);
        if !self.cache.contains_key(&key) {
            let k = self.compile(f)?;
            self.cache.insert(key.clone(), k);
        }
        Ok(&self.cache[&key])
    }

    fn compile(&mut self, f: &Function) -> Result<Kernel, JitError> {
        let plan = plan::plan(f)?;
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
        let mut refs = HashMap::new();
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            for (name, fid) in &self.math {
                refs.insert(*name, self.module.declare_func_in_func(*fid, b.func));
            }
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let p = b.block_params(entry).to_vec();
            let math = MathRefs { by_name: refs };
            let layout = {
                let mut g = Gen::new(f, &plan, &mut b, &math, [p[0], p[1], p[2]]);
                g.assign_slots();
                g.emit();
                g.layout.clone()
            };
            b.ins_return();
            b.finalize(self.module.target_config());
            self.ctx.set_disasm(true);
            let clif = self.ctx.func.display().to_string();
            self.module
                .define_function(id, &mut self.ctx)
                .map_err(|e| JitError::Codegen(format!("{e:?}")))?;
            let asm = self
                .ctx
                .compiled_code()
                .and_then(|c| c.vcode.clone())
                .unwrap_or_default();
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

/// The cache key: the canonical hash of `f` with every f32 constant set to zero.
pub fn structure_key(f: &Function) -> String {
    let mut g = f.clone();
    for i in const_order(f) {
        g.insts[i].imm = Imm::Const(ConstVal::F32(0.0));
    }
    canonical_hash(&g)
}

impl Kernel {
    /// Run on inputs of shape `[b, c]` with the constants of `f` (which must have this
    /// kernel's structure). Returns the loss and, when `f` returns one, the gradient.
    pub fn call(
        &self,
        f: &Function,
        y_pred: &Tensor,
        y_true: &Tensor,
    ) -> Result<LossValue, JitError> {
        let (b, c) = match y_pred.shape.as_slice() {
            [b, c] if y_true.shape == y_pred.shape => (*b, *c),
            _ => {
                return Err(JitError::Inputs(
                    "y_pred and y_true must be matrices of one shape".into(),
                ));
            }
        };
        let dims = [b as i64, c as i64];
        let size = |shape: &[ncp_ir::Dim]| -> usize {
            shape
                .iter()
                .map(|d| match d {
                    ncp_ir::Dim::B => b,
                    ncp_ir::Dim::C => c,
                    ncp_ir::Dim::Fixed(n) => *n as usize,
                })
                .product()
        };
        let consts: Vec<f32> = const_order(f)
            .iter()
            .map(|i| match f.insts[*i].imm {
                Imm::Const(ConstVal::F32(x)) => x,
                _ => 0.0,
            })
            .collect();
        if consts.len() != self.layout.consts.len() {
            return Err(JitError::Inputs(
                "the function does not have this kernel's structure".into(),
            ));
        }
        let mut yp: Vec<f32> = y_pred.to_f32();
        let mut yt: Vec<f32> = y_true.to_f32();
        let mut loss = [0f32; 1];
        let mut grad = vec![0f32; self.layout.grad.as_deref().map_or(0, size)];
        let mut scratch: Vec<Vec<f32>> = self
            .layout
            .scratch
            .iter()
            .map(|s| vec![0f32; size(s).max(1)])
            .collect();
        let mut ptrs: Vec<*mut f32> = vec![
            yp.as_mut_ptr(),
            yt.as_mut_ptr(),
            loss.as_mut_ptr(),
            grad.as_mut_ptr(),
        ];
        ptrs.extend(scratch.iter_mut().map(|s| s.as_mut_ptr()));
        // SAFETY: every buffer has the size the kernel's layout asks for at these dims.
        unsafe { (self.func)(ptrs.as_ptr(), dims.as_ptr(), consts.as_ptr()) };
        let grad = self
            .layout
            .grad
            .as_ref()
            .map(|_| grad.chunks(c.max(1)).map(|r| r.to_vec()).collect());
        Ok(LossValue {
            loss: loss[0],
            grad,
            fault: None,
        })
    }
}
