//! Lowering a [`Plan`] to Cranelift IR.
//!
//! Kernel ABI: `extern "C" fn(bufs: *const *mut f32, dims: *const i64, consts: *const f32)`.
//! `bufs[0]` is y_pred, `bufs[1]` y_true, `bufs[2]` the loss (one f32), `bufs[3]` the
//! gradient (when the function returns one), then one buffer per stored value
//! (see [`Layout`]). `dims` is `[B, C, whole batch's B, carried loss in (f64 bits), carried
//! loss out]` ([`Layout::carries_loss`]). `consts` holds the f32 constants, so genomes that
//! differ only in constants share one kernel.

use super::plan::{Home, Plan, Stage};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, ExtFuncData, ExternalName, FuncRef, InstBuilder, MemFlagsData, Signature,
    UserExternalName, Value as CV, types,
};
use cranelift_frontend::FunctionBuilder;
use ncp_ir::{Axis, ConstVal, DType, Dim, Function, Imm, Inst, Opcode, Value};
use std::collections::HashMap;

mod elem;
mod group;
mod ops;
mod scalar;
mod simd;
mod softmax;

/// Buffers a kernel needs besides its inputs and outputs: their shapes, in slot order from 4.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Shape of each scratch buffer.
    pub scratch: Vec<Vec<Dim>>,
    /// Indices into the IR's constant instructions, in `consts` order.
    pub consts: Vec<Inst>,
    /// Shape of the gradient output, when there is one.
    pub grad: Option<Vec<Dim>>,
    /// The loss's f64 accumulator starts from `dims[3]` (an f64's bits) and is written,
    /// unfinished, to `dims[4]`: a batch run as consecutive blocks of rows, each block
    /// continuing the previous block's sum, adds in exactly the order of one call
    /// ([`Gen::carry`]).
    pub carries_loss: bool,
}

/// Functions a kernel may call.
pub struct MathRefs {
    /// By symbol name: the function's index in the module and its signature.
    pub by_name: HashMap<&'static str, (u32, Signature)>,
}

/// Byte offsets in `dims` of the carried loss accumulator, in and out ([`Layout::carries_loss`]).
const CARRY_IN: i32 = 24;
const CARRY_OUT: i32 = 32;

/// The smallest f64 that rounds to infinity as an f32 (f32::MAX plus half an ulp).
const F32_OVERFLOW: f64 = 3.402_823_567_797_336_6e38;

/// Strides (in elements) of an access: per dim, a product of dims or zero.
type Strides = Vec<Option<Vec<Dim>>>;

pub(super) struct Gen<'a, 'b> {
    f: &'a Function,
    plan: &'a Plan,
    pub b: &'a mut FunctionBuilder<'b>,
    math: &'a MathRefs,
    bufs: CV,
    dims: (CV, CV),
    /// The batch size of the whole input (`dims[2]`): counts, means and `dim<B>` use it, so
    /// a kernel run on a block of rows computes that block's share of a mean.
    batch_total: CV,
    consts: CV,
    scalars: HashMap<Value, CV>,
    /// Constants compiled into the code (pow exponents), by value.
    baked: HashMap<Value, f32>,
    /// 1, B, C and B*C, computed once in the entry block.
    extents: [CV; 4],
    slot: HashMap<Value, usize>,
    base: HashMap<usize, CV>,
    pub layout: Layout,
    flags: MemFlagsData,
    /// Inline polynomial exp/log instead of exact library calls.
    pub fast: bool,
    /// Fused groups and softmax rows in f32x4 lanes, exact exp/log/sigmoid inlined
    /// ([`super::Tier::Hot`]; always on in fast math).
    pub simd: bool,
    /// exp/log/sigmoid planned as standalone ops and contiguous softmaxes run as calls on
    /// whole buffers ([`ncp_ir::vmath`]): `Jit::wide_calls`, on where the CPU has wide lanes.
    pub vcalls: bool,
    /// Per softmax instruction, a row-sized f64 scratch buffer.
    aux: HashMap<Inst, usize>,
    /// The loss's reduction, carried across blocks of rows ([`Layout::carries_loss`]); set
    /// only for row-separable kernels in exact math whose loss is a sum or mean over
    /// everything (every element, or the only axis of a `[B]` value: `plan::row_separable`),
    /// so wherever it is accumulated, one accumulator covers the whole batch.
    pub carry: Option<Inst>,
    /// The `dims` argument (the carry's in and out slots follow the dims).
    dims_ptr: CV,
    /// Math routines imported into the kernel so far.
    imported: HashMap<&'static str, FuncRef>,
    /// The first thing met that this backend cannot lower. Code generation goes on with a
    /// placeholder value and the caller discards the function and reports this instead.
    pub unsupported: Option<String>,
}

/// Contiguous row-major strides of a shape.
fn contiguous(shape: &[Dim]) -> Strides {
    (0..shape.len())
        .map(|i| Some(shape[i + 1..].to_vec()))
        .collect()
}

/// Strides for reading a value of `shape` with strides `st` broadcast to `out`.
fn broadcast_strides(shape: &[Dim], st: &Strides, out: &[Dim]) -> Strides {
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || (shape[i - off] == Dim::Fixed(1) && out[i] != Dim::Fixed(1)) {
                None
            } else {
                st[i - off].clone()
            }
        })
        .collect()
}

impl<'a, 'b> Gen<'a, 'b> {
    pub fn new(
        f: &'a Function,
        plan: &'a Plan,
        b: &'a mut FunctionBuilder<'b>,
        math: &'a MathRefs,
        params: [CV; 3],
    ) -> Self {
        let flags = MemFlagsData::trusted();
        let bp = params[1];
        let db = b.ins().load(types::I64, flags, bp, 0);
        let dc = b.ins().load(types::I64, flags, bp, 8);
        let dbt = b.ins().load(types::I64, flags, bp, 16);
        let one = b.ins().iconst(types::I64, 1);
        let dbc = b.ins().imul(db, dc);
        Gen {
            baked: HashMap::new(),
            extents: [one, db, dc, dbc],
            fast: false,
            simd: false,
            vcalls: false,
            aux: HashMap::new(),
            imported: HashMap::new(),
            unsupported: None,
            f,
            plan,
            b,
            math,
            bufs: params[0],
            dims: (db, dc),
            dims_ptr: bp,
            carry: None,
            batch_total: dbt,
            consts: params[2],
            scalars: HashMap::new(),
            slot: HashMap::new(),
            base: HashMap::new(),
            layout: Layout::default(),
            flags,
        }
    }

    fn dim(&mut self, d: Dim) -> CV {
        match d {
            Dim::B => self.dims.0,
            Dim::C => self.dims.1,
            Dim::Fixed(n) => self.b.ins().iconst(types::I64, n as i64),
        }
    }

    fn product(&mut self, ds: &[Dim]) -> CV {
        let nb = ds.iter().filter(|d| **d == Dim::B).count();
        let nc = ds.iter().filter(|d| **d == Dim::C).count();
        let fixed: u64 = ds
            .iter()
            .map(|d| if let Dim::Fixed(n) = d { *n as u64 } else { 1 })
            .product();
        if fixed == 1 && nb <= 1 && nc <= 1 {
            return self.extents[nb + 2 * nc];
        }
        let mut acc = self.b.ins().iconst(types::I64, 1);
        for d in ds {
            let v = self.dim(*d);
            acc = self.b.ins().imul(acc, v);
        }
        acc
    }

    fn base_ptr(&mut self, slot: usize) -> CV {
        if let Some(p) = self.base.get(&slot) {
            return *p;
        }
        let p = self
            .b
            .ins()
            .load(types::I64, self.flags, self.bufs, (slot * 8) as i32);
        self.base.insert(slot, p);
        p
    }

    fn fconst(&mut self, x: f32) -> CV {
        self.b.ins().f32const(x)
    }

    /// Assign buffers (inputs, outputs, then every stored or buffer-homed value) and number
    /// the f32 constants in layout order.
    pub fn assign_slots(&mut self) {
        let entry = self.f.entry();
        self.layout.consts = const_order(self.f);
        let ps = &self.f.blocks[entry].params;
        self.slot.insert(ps[0], 0);
        self.slot.insert(ps[1], 1);
        let grad = self.plan.returns.get(1).copied();
        if let Some(g) = grad {
            self.layout.grad = Some(self.f.ty(g).shape.clone());
            let own = matches!(
                self.plan.homes.get(&g),
                Some(Home::Buffer | Home::Reduced(_))
            ) || self.plan.stored.contains(&g);
            if own && !self.slot.contains_key(&g) {
                self.slot.insert(g, 3);
            }
        }
        for &i in &self.f.blocks[entry].insts {
            let v = self.f.insts[i].result;
            let ty = self.f.ty(v);
            if ty.is_scalar() || self.slot.contains_key(&v) {
                continue;
            }
            let needs = match self.plan.homes.get(&v) {
                Some(Home::Buffer | Home::Reduced(_)) => true,
                Some(Home::InGroup(_)) => self.plan.stored.contains(&v),
                _ => false,
            };
            if needs {
                self.slot.insert(v, 4 + self.layout.scratch.len());
                self.layout.scratch.push(ty.shape.clone());
            }
            if self.f.insts[i].op == Opcode::Softmax {
                // One row of f64 exponentials: [cols, 2] f32 slots.
                let cols = *ty.shape.last().expect("softmax has rank >= 1");
                self.aux.insert(i, 4 + self.layout.scratch.len());
                self.layout.scratch.push(vec![cols, Dim::Fixed(2)]);
            }
        }
    }

    /// The address of element `k` of softmax `i`'s f64 row buffer.
    pub(super) fn aux_addr(&mut self, i: Inst, k: CV) -> CV {
        let base = self.base_ptr(self.aux[&i]);
        let bytes = self.b.ins().ishl_imm_u(k, 3);
        self.b.ins().iadd(base, bytes)
    }

    /// Memory flags for the kernel's buffers.
    pub(super) fn mem(&self) -> MemFlagsData {
        self.flags
    }

    /// Load every buffer's base pointer once, in the entry block, so loops never reload them.
    pub fn preload_bases(&mut self) {
        let n = 4 + self.layout.scratch.len();
        for slot in 0..n {
            let p = self
                .b
                .ins()
                .load(types::I64, self.flags, self.bufs, (slot * 8) as i32);
            self.base.insert(slot, p);
        }
    }

    /// Where a stored value's elements are: buffer slot and strides over its own shape.
    fn access(&self, v: Value) -> Option<(usize, Strides)> {
        if let Some(&s) = self.slot.get(&v) {
            return Some((s, contiguous(&self.f.ty(v).shape)));
        }
        let Some(Home::View(src)) = self.plan.homes.get(&v) else {
            return None;
        };
        let d = self.f.def_inst(v)?;
        let shape = &self.f.ty(v).shape;
        match d.op {
            Opcode::Reshape => self.slot.get(src).map(|s| (*s, contiguous(shape))),
            Opcode::Expand => {
                let (s, st) = self.access(*src)?;
                let mut out = st;
                match d.imm {
                    Imm::Axis(Axis::Index(a)) => out.insert(a as usize, None),
                    _ => out = vec![None; shape.len()],
                }
                Some((s, out))
            }
            Opcode::BroadcastLike => {
                let (s, st) = self.access(*src)?;
                Some((s, broadcast_strides(&self.f.ty(*src).shape, &st, shape)))
            }
            _ => None,
        }
    }

    fn offset(&mut self, strides: &Strides, idx: &[CV]) -> CV {
        let mut off = self.b.ins().iconst(types::I64, 0);
        for (s, i) in strides.iter().zip(idx) {
            if let Some(ds) = s {
                let st = self.product(ds);
                let t = self.b.ins().imul(*i, st);
                off = self.b.ins().iadd(off, t);
            }
        }
        off
    }

    fn addr(&mut self, slot: usize, off: CV) -> CV {
        let base = self.base_ptr(slot);
        let bytes = self.b.ins().ishl_imm_u(off, 2);
        self.b.ins().iadd(base, bytes)
    }

    /// Load element `idx` (over `out` shape, broadcasting) of a stored or viewed value.
    fn load(&mut self, v: Value, out: &[Dim], idx: &[CV]) -> CV {
        let ty = self.f.ty(v).clone();
        let (slot, st) = self.access(v).expect("planned values are stored");
        let st = broadcast_strides(&ty.shape, &st, out);
        let off = self.offset(&st, idx);
        let a = self.addr(slot, off);
        let x = self.b.ins().load(types::F32, self.flags, a, 0);
        if ty.dtype == DType::Bool {
            let z = self.fconst(0.0);
            self.b.ins().fcmp(FloatCC::NotEqual, x, z)
        } else {
            x
        }
    }

    fn store_at(&mut self, slot: usize, off: CV, x: CV, dtype: DType) {
        let x = if dtype == DType::Bool {
            self.bool_to_f32(x)
        } else {
            x
        };
        let a = self.addr(slot, off);
        self.b.ins().store(self.flags, x, a, 0);
    }

    fn bool_to_f32(&mut self, c: CV) -> CV {
        let one = self.fconst(1.0);
        let zero = self.fconst(0.0);
        self.b.ins().select(c, one, zero)
    }

    /// Records that `what` cannot be lowered (the first such thing is reported) and gives a
    /// placeholder value so that code generation can finish its walk.
    pub(super) fn unsupported(&mut self, what: String) -> CV {
        self.unsupported.get_or_insert(what);
        self.fconst(0.0)
    }

    /// The kernel's reference to math routine `name`, imported on first use (as
    /// `cranelift_module`'s `declare_func_in_func` does for an imported function).
    fn func_ref(&mut self, name: &str) -> Option<FuncRef> {
        let (&key, (index, sig)) = self.math.by_name.get_key_value(name)?;
        if let Some(fr) = self.imported.get(key) {
            return Some(*fr);
        }
        let signature = self.b.import_signature(sig.clone());
        let user = self
            .b
            .func
            .declare_imported_user_function(UserExternalName {
                namespace: 0,
                index: *index,
            });
        let fr = self.b.import_function(ExtFuncData {
            name: ExternalName::user(user),
            signature,
            colocated: false,
            patchable: false,
        });
        self.imported.insert(key, fr);
        Some(fr)
    }

    fn call(&mut self, name: &str, args: &[CV]) -> CV {
        let Some(fr) = self.func_ref(name) else {
            return self.unsupported(format!("no math routine `{name}` is registered"));
        };
        let inst = self.b.ins().call(fr, args);
        self.b.inst_results(inst)[0]
    }

    /// Call a routine that returns nothing (the `ncp_v*` slice functions).
    fn call_void(&mut self, name: &str, args: &[CV]) {
        let Some(fr) = self.func_ref(name) else {
            self.unsupported(format!("no math routine `{name}` is registered"));
            return;
        };
        self.b.ins().call(fr, args);
    }

    /// Whether `v` is held contiguously in a buffer of its own shape.
    fn contiguous_buffer(&self, v: Value) -> bool {
        self.slot.contains_key(&v)
    }

    /// exp/log/sigmoid instruction `i` planned as a standalone op: one call on the whole
    /// buffer of its operand.
    pub(super) fn vector_call(&mut self, i: Inst) {
        let d = self.f.insts[i].clone();
        let name = match d.op {
            Opcode::Exp => "ncp_vexpf",
            Opcode::Log => "ncp_vlogf",
            Opcode::Sigmoid => "ncp_vsigmoidf",
            op => {
                self.unsupported(format!("{op:?} as a call on a whole buffer"));
                return;
            }
        };
        if !self.contiguous_buffer(d.args[0]) {
            self.unsupported(format!("{:?} of a value that is not in a buffer", d.op));
            return;
        }
        let shape = self.f.ty(d.result).shape.clone();
        let n = self.product(&shape);
        let src = self.base_ptr(self.slot[&d.args[0]]);
        let dst = self.base_ptr(self.slot[&d.result]);
        self.call_void(name, &[src, dst, n]);
    }

    /// A loop `for i in 0..n { body(i) }`.
    fn for_loop(&mut self, n: CV, body: impl FnMut(&mut Self, CV)) {
        let z = self.b.ins().iconst(types::I64, 0);
        self.for_range(z, n, 1, body);
    }

    /// `for i in (lo..hi).step_by(step)`, as a guarded bottom-tested loop: `if lo < hi`, then
    /// the body with the test at its end. In this shape Cranelift hoists loop-invariant
    /// values (a mean's `1 / count`, a row's offset) out of the loop; with the test at the
    /// top it placed them in the body and recomputed them every iteration (measured: two
    /// divisions per four elements of MSE's gradient).
    fn for_range(&mut self, lo: CV, hi: CV, step: i64, mut body: impl FnMut(&mut Self, CV)) {
        let body_b = self.b.create_block();
        let exit = self.b.create_block();
        let i = self.b.declare_var(types::I64);
        self.b.def_var(i, lo);
        let any = self.b.ins().icmp(IntCC::SignedLessThan, lo, hi);
        self.b.ins().brif(any, body_b, &[], exit, &[]);
        self.b.switch_to_block(body_b);
        let iv = self.b.use_var(i);
        body(self, iv);
        let next = self.b.ins().iadd_imm_s(iv, step);
        self.b.def_var(i, next);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, next, hi);
        self.b.ins().brif(more, body_b, &[], exit, &[]);
        self.b.seal_block(body_b);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
    }

    fn scalar_of(&self, v: Value) -> CV {
        match self.scalars.get(&v) {
            Some(x) => *x,
            None => panic!(
                "no scalar for {v} ({:?}, home {:?})\n{}",
                self.f.def_inst(v).map(|d| d.op),
                self.plan.homes.get(&v),
                ncp_ir::text::print_function(self.f)
            ),
        }
    }

    /// Emit every stage.
    pub fn emit(&mut self) {
        for (k, s) in self.plan.stages.iter().enumerate() {
            let _ = k;
            match s {
                Stage::Scalar(i) => self.scalar(*i),
                Stage::Group(g) => self.group(g),
                Stage::Op(i) => ops::op(self, *i),
            }
        }
        // Outputs.
        let loss = self.scalar_of(self.plan.returns[0]);
        let p = self.base_ptr(2);
        self.b.ins().store(self.flags, loss, p, 0);
        if let Some(&g) = self.plan.returns.get(1)
            && self.slot.get(&g) != Some(&3)
        {
            let shape = self.f.ty(g).shape.clone();
            self.copy_to_slot(g, &shape, 3);
        }
    }

    fn copy_to_slot(&mut self, v: Value, shape: &[Dim], slot: usize) {
        let shape = shape.to_vec();
        let dt = self.f.ty(v).dtype;
        let scalar = self.scalars.get(&v).copied();
        self.loops(&shape, &mut |g: &mut Self, idx: &[CV]| {
            let x = match scalar {
                Some(s) => s,
                None => g.load(v, &shape, idx),
            };
            let st = contiguous(&shape);
            let off = g.offset(&st, idx);
            g.store_at(slot, off, x, dt);
        });
    }

    /// Loops over a rank-0..2 shape calling `body` with the indices.
    pub(super) fn loops(&mut self, shape: &[Dim], body: &mut dyn FnMut(&mut Self, &[CV])) {
        match shape.len() {
            0 => body(self, &[]),
            1 => {
                let n = self.dim(shape[0]);
                self.for_loop(n, |g, i| body(g, &[i]));
            }
            _ => {
                let r = self.dim(shape[0]);
                let c = self.dim(shape[1]);
                self.for_loop(r, |g, i| g.for_loop(c, |g, j| body(g, &[i, j])));
            }
        }
    }

    // Accessors the standalone-op emitter needs.
    pub(super) fn f(&self) -> &'a Function {
        self.f
    }
    pub(super) fn dim_of(&mut self, d: Dim) -> CV {
        self.dim(d)
    }
    pub(super) fn slot_of(&self, v: Value) -> usize {
        match self.slot.get(&v) {
            Some(s) => *s,
            None => panic!(
                "no buffer for {v} ({:?}, home {:?})\n{}",
                self.f.def_inst(v).map(|d| d.op),
                self.plan.homes.get(&v),
                ncp_ir::text::print_function(self.f)
            ),
        }
    }
    pub(super) fn read(&mut self, v: Value, out: &[Dim], idx: &[CV]) -> CV {
        match self.scalars.get(&v) {
            Some(s) => *s,
            None => self.load(v, out, idx),
        }
    }
    pub(super) fn write(&mut self, slot: usize, shape: &[Dim], idx: &[CV], x: CV, dt: DType) {
        let st = contiguous(shape);
        let off = self.offset(&st, idx);
        self.store_at(slot, off, x, dt);
    }
    pub(super) fn set_scalar(&mut self, v: Value, x: CV) {
        self.scalars.insert(v, x);
    }
    pub(super) fn loop_n(&mut self, n: CV, body: impl FnMut(&mut Self, CV)) {
        self.for_loop(n, body);
    }
    pub(super) fn f32c(&mut self, x: f32) -> CV {
        self.fconst(x)
    }
    pub(super) fn math_call(&mut self, name: &str, args: &[CV]) -> CV {
        self.call(name, args)
    }
    /// The number of elements over `ds` in the whole input (B is the total batch size).
    pub(super) fn count_of(&mut self, ds: &[Dim]) -> CV {
        let mut acc = self.b.ins().iconst(types::I64, 1);
        for d in ds {
            let v = if *d == Dim::B {
                self.batch_total
            } else {
                self.dim(*d)
            };
            acc = self.b.ins().imul(acc, v);
        }
        acc
    }
}

/// The kernel's Cranelift signature.
pub fn signature(call_conv: cranelift_codegen::isa::CallConv) -> Signature {
    let mut s = Signature::new(call_conv);
    for _ in 0..3 {
        s.params.push(AbiParam::new(types::I64));
    }
    s
}

/// The f32 constants of a straight-line function in layout order: the order of the kernel's
/// `consts` argument.
///
/// Constants used as `pow` exponents are compiled into the code instead (and so are part of
/// the kernel's cache key): `x^2` becomes a multiply.
pub fn const_order(f: &Function) -> Vec<Inst> {
    let insts = &f.blocks[f.entry()].insts;
    let exponent_only = |v: Value| {
        insts
            .iter()
            .any(|&i| f.insts[i].op == Opcode::Pow && f.insts[i].args.get(1) == Some(&v))
    };
    insts
        .iter()
        .copied()
        .filter(|i| {
            matches!(f.insts[*i].imm, Imm::Const(ConstVal::F32(_)))
                && !exponent_only(f.insts[*i].result)
        })
        .collect()
}
