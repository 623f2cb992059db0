//! Elementwise ops on scalar CLIF values: the arithmetic of every fused loop and scalar stage.

use super::super::fastmath::W;
use super::Gen;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value as CV, types};
use ncp_ir::{DType, Imm, Inst, Opcode};

impl Gen<'_, '_> {
    /// Instruction `i` on operand values: `pow` by a compiled-in 0, 1 or 2 becomes 1, x or
    /// x*x (each bit-exact: x*x of an f32 is exact in f64, so rounding it once is what the
    /// interpreter's f64 `pow` gives); everything else goes to [`Self::elem`].
    pub(super) fn elem_inst(&mut self, i: Inst, args: &[CV]) -> CV {
        let d = &self.f.insts[i];
        if d.op == Opcode::Pow && self.f.ty(d.args[0]).dtype == DType::F32 {
            match self.baked.get(&d.args[1]).copied() {
                Some(0.0) => return self.fconst(1.0),
                Some(1.0) => return args[0],
                Some(2.0) => return self.b.ins().fmul(args[0], args[0]),
                _ => {}
            }
        }
        let dts: Vec<DType> = d.args.iter().map(|a| self.f.ty(*a).dtype).collect();
        self.elem(d.op, &d.imm, args, &dts)
    }

    /// An elementwise op on scalar CLIF values of the given dtypes.
    pub(super) fn elem(&mut self, op: Opcode, imm: &Imm, a: &[CV], dt: &[DType]) -> CV {
        use Opcode as O;
        let fl = dt.first().copied() == Some(DType::F32);
        let b = &mut *self.b;
        match op {
            O::Neg if fl => b.ins().fneg(a[0]),
            O::Neg => b.ins().ineg(a[0]),
            O::Abs if fl => b.ins().fabs(a[0]),
            O::Abs => {
                let n = b.ins().ineg(a[0]);
                let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, a[0], 0);
                b.ins().select(neg, n, a[0])
            }
            O::Sqrt => b.ins().sqrt(a[0]),
            O::Floor => b.ins().floor(a[0]),
            O::Ceil => b.ins().ceil(a[0]),
            O::Round => b.ins().nearest(a[0]),
            O::Recip => {
                let one = b.ins().f32const(1.0);
                b.ins().fdiv(one, a[0])
            }
            O::Relu if fl => {
                let z = b.ins().f32const(0.0);
                b.ins().fmax(a[0], z)
            }
            O::Relu => {
                let pos = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, a[0], 0);
                let z = b.ins().iconst(types::I64, 0);
                b.ins().select(pos, a[0], z)
            }
            O::Sign if fl => {
                let one = b.ins().f32const(1.0);
                let m1 = b.ins().f32const(-1.0);
                let z = b.ins().f32const(0.0);
                let gt = b.ins().fcmp(FloatCC::GreaterThan, a[0], z);
                let lt = b.ins().fcmp(FloatCC::LessThan, a[0], z);
                let keep = b.ins().fmul(a[0], z);
                let s = b.ins().select(lt, m1, keep);
                b.ins().select(gt, one, s)
            }
            O::Sign => {
                let gt = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, a[0], 0);
                let lt = b.ins().icmp_imm_s(IntCC::SignedLessThan, a[0], 0);
                let one = b.ins().iconst(types::I64, 1);
                let m1 = b.ins().iconst(types::I64, -1);
                let z = b.ins().iconst(types::I64, 0);
                let s = b.ins().select(lt, m1, z);
                b.ins().select(gt, one, s)
            }
            O::Exp if self.fast => self.fast_exp(a[0]),
            O::Log if self.fast => self.fast_log(a[0]),
            O::Sigmoid if self.fast => {
                let n = self.b.ins().fneg(a[0]);
                let e = self.fast_exp(n);
                let one = self.fconst(1.0);
                let d = self.b.ins().fadd(one, e);
                self.b.ins().fdiv(one, d)
            }
            // Exact exp/log/sigmoid in the hot tier: ncp_ir::math's sequence inline (what the
            // call of the quick tier computes).
            O::Exp if fl && self.simd => self.exact_f32(W::S, a[0], Self::exact_exp64),
            O::Log if fl && self.simd => self.exact_f32(W::S, a[0], Self::exact_ln64),
            O::Sigmoid if fl && self.simd => self.exact_f32(W::S, a[0], Self::exact_sigmoid64),
            // Everything the table gives an exact-math routine: one call.
            _ if fl && let Some(sym) = op.info().libm => self.call(sym, a),
            O::Pow => {
                // Integer powers only occur on scalars; compute through f32 like the interpreter.
                let xf = b.ins().fcvt_from_sint(types::F32, a[0]);
                let yf = b.ins().fcvt_from_sint(types::F32, a[1]);
                let r = self.call("ncp_powf", &[xf, yf]);
                self.b.ins().fcvt_to_sint_sat(types::I64, r)
            }
            O::Add if fl => b.ins().fadd(a[0], a[1]),
            O::Sub if fl => b.ins().fsub(a[0], a[1]),
            O::Mul if fl => b.ins().fmul(a[0], a[1]),
            O::Div => b.ins().fdiv(a[0], a[1]),
            O::Add if dt[0] == DType::Bool => b.ins().bor(a[0], a[1]),
            O::Mul if dt[0] == DType::Bool => b.ins().band(a[0], a[1]),
            O::Add => b.ins().iadd(a[0], a[1]),
            O::Sub => b.ins().isub(a[0], a[1]),
            O::Mul => b.ins().imul(a[0], a[1]),
            O::Max | O::Min if fl => {
                // NaN from either side wins; otherwise keep the first operand on a tie.
                let (x, y) = (a[0], a[1]);
                let better = if op == O::Max {
                    b.ins().fcmp(FloatCC::LessThan, x, y)
                } else {
                    b.ins().fcmp(FloatCC::LessThan, y, x)
                };
                let r = b.ins().select(better, y, x);
                let uno = b.ins().fcmp(FloatCC::Unordered, x, y);
                let nan = b.ins().fadd(x, y);
                b.ins().select(uno, nan, r)
            }
            O::Max | O::Min => {
                let cc = if dt[0] == DType::Bool {
                    if op == O::Max {
                        IntCC::UnsignedLessThan
                    } else {
                        IntCC::UnsignedGreaterThan
                    }
                } else if op == O::Max {
                    IntCC::SignedLessThan
                } else {
                    IntCC::SignedGreaterThan
                };
                let better = b.ins().icmp(cc, a[0], a[1]);
                b.ins().select(better, a[1], a[0])
            }
            O::ClampMin => {
                let lt = b.ins().fcmp(FloatCC::LessThan, a[0], a[1]);
                b.ins().select(lt, a[1], a[0])
            }
            O::ClampMax => {
                let gt = b.ins().fcmp(FloatCC::GreaterThan, a[0], a[1]);
                b.ins().select(gt, a[1], a[0])
            }
            O::Gt | O::Ge | O::Eq if fl => {
                let cc = match op {
                    O::Gt => FloatCC::GreaterThan,
                    O::Ge => FloatCC::GreaterThanOrEqual,
                    _ => FloatCC::Equal,
                };
                b.ins().fcmp(cc, a[0], a[1])
            }
            O::Gt | O::Ge | O::Eq => {
                let unsigned = dt[0] == DType::Bool;
                let cc = match (op, unsigned) {
                    (O::Gt, false) => IntCC::SignedGreaterThan,
                    (O::Ge, false) => IntCC::SignedGreaterThanOrEqual,
                    (O::Gt, true) => IntCC::UnsignedGreaterThan,
                    (O::Ge, true) => IntCC::UnsignedGreaterThanOrEqual,
                    _ => IntCC::Equal,
                };
                b.ins().icmp(cc, a[0], a[1])
            }
            O::Select => b.ins().select(a[0], a[1], a[2]),
            O::OnesLike => b.ins().f32const(1.0),
            O::ZerosLike => b.ins().f32const(0.0),
            O::Expand | O::BroadcastLike => a[0],
            O::Cast => {
                let Imm::DType(to) = imm else {
                    return self.unsupported("a cast without a dtype".into());
                };
                match (dt[0], *to) {
                    (x, y) if x == y => a[0],
                    (DType::F32, DType::I64) => b.ins().fcvt_to_sint_sat(types::I64, a[0]),
                    (DType::F32, DType::Bool) => {
                        let z = b.ins().f32const(0.0);
                        b.ins().fcmp(FloatCC::NotEqual, a[0], z)
                    }
                    (DType::I64, DType::F32) => b.ins().fcvt_from_sint(types::F32, a[0]),
                    (DType::I64, DType::Bool) => b.ins().icmp_imm_s(IntCC::NotEqual, a[0], 0),
                    (DType::Bool, DType::I64) => b.ins().uextend(types::I64, a[0]),
                    (DType::Bool, DType::F32) => self.bool_to_f32(a[0]),
                    (x, y) => self.unsupported(format!("cast from {x} to {y}")),
                }
            }
            _ => self.unsupported(format!(
                "op `{}` on {:?} operands in a fused loop",
                op.name(),
                dt
            )),
        }
    }
}
