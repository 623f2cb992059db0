//! Per-opcode lowering for AMM: the arithmetic, tensor, reduction, neural-network, loss and
//! logical categories, with PyTorch's dtype promotion between bool, integer and float
//! registers. The driver (blocks, jumps, RETURN) is in the parent module.

use super::{Lowerer, NREG, Paper};
use crate::formats::amm::opcodes as op;
use crate::formats::amm::pyval::{dict_key, is_float, param, py_num};
use crate::formats::{FormatError, Mode};
use ncp_ir::types::broadcast;
use ncp_ir::{Axis, Block, ConstVal, DType, Imm, Opcode, Value};
use serde_json::{Value as Json, json};

impl Lowerer<'_> {
    /// A binary elementwise op with PyTorch's type promotion. `Ok(None)`: torch raises.
    pub(super) fn binary(
        &mut self,
        b: Block,
        opc: Opcode,
        x: Value,
        y: Value,
    ) -> Result<Option<Value>, FormatError> {
        let (tx, ty) = (self.ty(x), self.ty(y));
        if broadcast(&tx.shape, &ty.shape).is_none() {
            return Ok(None);
        }
        let d = promote(tx.dtype, ty.dtype);
        let allowed = match opc {
            Opcode::Sub => tx.dtype != DType::Bool && ty.dtype != DType::Bool,
            Opcode::Pow => !(tx.dtype == DType::Bool && ty.dtype == DType::Bool),
            _ => true,
        };
        if !allowed {
            return Ok(None);
        }
        let d = if opc == Opcode::Pow && d == DType::Bool {
            DType::I64
        } else {
            d
        };
        let x = self.cast(b, x, d)?;
        let y = self.cast(b, y, d)?;
        Ok(Some(self.ir(b, opc, Imm::None, &[x, y])?))
    }

    pub(super) fn arith(
        &mut self,
        b: Block,
        o: f64,
        p: &[Json],
        regs: &mut [Option<Value>; NREG],
    ) -> Result<Result<(), Paper>, FormatError> {
        let one = json!(1);
        let nine = json!(9);
        let code = o as i64;
        if o.fract() != 0.0
            || !(1..=12).contains(&code) && code != op::ADD_CONST && code != op::MUL_CONST
        {
            return Ok(Err(Paper(format!(
                "unsupported arithmetic opcode {o}; skipped"
            ))));
        }
        let binary = matches!(code, 1..=5 | 20 | 21);
        let need = if binary { 3 } else { 2 };
        if p.len() < need && self.mode == Mode::Strict {
            return Ok(Err(Paper(format!(
                "needs {need} parameters, got {}",
                p.len()
            ))));
        }
        if p.len() > need && self.mode == Mode::Strict {
            return Ok(Err(Paper(format!(
                "takes {need} parameters, got {}",
                p.len()
            ))));
        }
        let rx = param(p, 0, &one);
        let (second, rz) = if binary {
            if p.len() < 3 {
                (param(p, 1, &one), &nine)
            } else {
                (&p[1], &p[2])
            }
        } else if p.len() < 2 {
            (&one, &nine)
        } else {
            (&one, &p[1])
        };
        let x = match self.reg(b, regs, rx) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let fails = || {
            Ok(Err(Paper(
                "PyTorch raises for these operand types or shapes; skipped".into(),
            )))
        };
        let out = match code {
            op::ADD_CONST | op::MUL_CONST => {
                let c = if p.len() < 3 {
                    if p.len() > 1 { &p[1] } else { &json!(1.0) }
                } else {
                    &p[1]
                };
                let Some(v) = self.scalar_op(
                    b,
                    if code == op::ADD_CONST {
                        Opcode::Add
                    } else {
                        Opcode::Mul
                    },
                    x,
                    c,
                )?
                else {
                    return fails();
                };
                v
            }
            1..=5 => {
                let y = match self.reg(b, regs, second) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                };
                let r = match code {
                    op::ADD => self.binary(b, Opcode::Add, x, y)?,
                    op::SUB => self.binary(b, Opcode::Sub, x, y)?,
                    op::MUL => self.binary(b, Opcode::Mul, x, y)?,
                    op::POW => self.binary(b, Opcode::Pow, x, y)?,
                    _ => {
                        let yf = self.cast(b, y, DType::F32)?;
                        let eps = self.specials[4];
                        let ys = self.ir(b, Opcode::Add, Imm::None, &[yf, eps])?;
                        let xf = self.cast(b, x, DType::F32)?;
                        self.binary(b, Opcode::Div, xf, ys)?
                    }
                };
                let Some(v) = r else { return fails() };
                v
            }
            op::SQRT | op::LOG | op::EXP | op::RECIPROCAL => {
                let xf = self.cast(b, x, DType::F32)?;
                match code {
                    op::SQRT => {
                        let z = self.konst(b, ConstVal::F32(0.0))?;
                        let c = self.ir(b, Opcode::ClampMin, Imm::None, &[xf, z])?;
                        self.ir(b, Opcode::Sqrt, Imm::None, &[c])?
                    }
                    op::LOG => {
                        let eps = self.specials[4];
                        let c = self.ir(b, Opcode::Max, Imm::None, &[xf, eps])?;
                        self.ir(b, Opcode::Log, Imm::None, &[c])?
                    }
                    op::EXP => {
                        let hi = self.konst(b, ConstVal::F32(88.0))?;
                        let c = self.ir(b, Opcode::ClampMax, Imm::None, &[xf, hi])?;
                        self.ir(b, Opcode::Exp, Imm::None, &[c])?
                    }
                    _ => {
                        let eps = self.specials[4];
                        let s = self.ir(b, Opcode::Add, Imm::None, &[xf, eps])?;
                        self.ir(b, Opcode::Recip, Imm::None, &[s])?
                    }
                }
            }
            op::ABS | op::NEGATE => {
                if self.f.ty(x).dtype == DType::Bool {
                    return fails();
                }
                self.ir(
                    b,
                    if code == op::ABS {
                        Opcode::Abs
                    } else {
                        Opcode::Neg
                    },
                    Imm::None,
                    &[x],
                )?
            }
            op::SQUARE => {
                let d = if self.f.ty(x).dtype == DType::F32 {
                    DType::F32
                } else {
                    DType::I64
                };
                let xc = self.cast(b, x, d)?;
                let two = self.konst(
                    b,
                    if d == DType::F32 {
                        ConstVal::F32(2.0)
                    } else {
                        ConstVal::I64(2)
                    },
                )?;
                self.ir(b, Opcode::Pow, Imm::None, &[xc, two])?
            }
            _ => {
                return Ok(Err(Paper(format!(
                    "unsupported arithmetic opcode {o}; skipped"
                ))));
            }
        };
        Ok(self.write(regs, rz, out))
    }

    /// `tensor OP python_scalar` with PyTorch's rules for Python scalars.
    fn scalar_op(
        &mut self,
        b: Block,
        opc: Opcode,
        x: Value,
        c: &Json,
    ) -> Result<Option<Value>, FormatError> {
        let (cd, cv) = match c {
            Json::Bool(v) => (DType::Bool, *v as u8 as f64),
            Json::Number(n) if n.is_i64() => (DType::I64, n.as_i64().unwrap_or(0) as f64),
            Json::Number(n) if n.is_u64() => return Ok(None),
            Json::Number(n) => (DType::F32, n.as_f64().unwrap_or(f64::NAN)),
            Json::Array(_) if self.f.ty(x).is_scalar() && self.f.ty(x).dtype != DType::F32 => {
                return Err(FormatError::AmmProgram(
                    "an integer register times a list is Python list repetition, which is not supported".into(),
                ));
            }
            _ => return Ok(None),
        };
        let xd = self.f.ty(x).dtype;
        let d = if rank(cd) > rank(xd) { cd } else { xd };
        let xc = self.cast(b, x, d)?;
        let k = self.konst(b, ConstVal::from_f64(d, cv))?;
        Ok(Some(self.ir(b, opc, Imm::None, &[xc, k])?))
    }

    pub(super) fn tensor_op(
        &mut self,
        b: Block,
        o: f64,
        p: &[Json],
        regs: &mut [Option<Value>; NREG],
    ) -> Result<Result<(), Paper>, FormatError> {
        let one = json!(1);
        let two = json!(2);
        let nine = json!(9);
        let code = o as i64;
        if o.fract() != 0.0
            || ![
                op::LOAD,
                op::LOAD_CONST,
                op::MATMUL,
                op::TRANSPOSE,
                op::CLONE,
            ]
            .contains(&code)
        {
            return Ok(Err(Paper(format!(
                "unsupported tensor opcode {o}; skipped"
            ))));
        }
        let need = if code == op::MATMUL { 3 } else { 2 };
        if self.mode == Mode::Strict && p.len() != need {
            return Ok(Err(Paper(format!(
                "takes {need} parameters, got {}",
                p.len()
            ))));
        }
        match code {
            op::LOAD => {
                let (rx, sy) = if p.len() < 2 {
                    (param(p, 0, &one), &json!(0))
                } else {
                    (&p[0], &p[1])
                };
                let v =
                    match dict_key(sy) {
                        Err(()) => return Ok(Err(Paper(
                            "the special register id is a list or object; the instruction fails"
                                .into(),
                        ))),
                        Ok(Some(i)) if (0..7).contains(&i) => self.specials[i as usize],
                        Ok(_) => match self
                            .zero(b, "the special register does not exist; it reads 0.0")
                        {
                            Ok(v) => v,
                            Err(e) => return Ok(Err(e)),
                        },
                    };
                Ok(self.write(regs, rx, v))
            }
            op::LOAD_CONST => {
                let (rx, c) = if p.len() < 2 {
                    (param(p, 0, &one), &json!(1.0))
                } else {
                    (&p[0], &p[1])
                };
                let k = match c {
                    Json::Bool(v) => ConstVal::Bool(*v),
                    Json::Number(n) if n.is_i64() => ConstVal::I64(n.as_i64().unwrap_or(0)),
                    Json::Number(n) if n.is_u64() => {
                        return Ok(Err(Paper(
                            "the integer constant overflows int64; the instruction fails".into(),
                        )));
                    }
                    Json::Number(n) => ConstVal::F32(n.as_f64().unwrap_or(f64::NAN) as f32),
                    Json::Array(_) => {
                        return Err(FormatError::AmmProgram(
                            "LOAD_CONST of a list (a tensor literal) is not supported".into(),
                        ));
                    }
                    _ => {
                        return Ok(Err(Paper(
                            "the constant is not a number; the instruction fails".into(),
                        )));
                    }
                };
                let v = self.konst(b, k)?;
                Ok(self.write(regs, rx, v))
            }
            op::MATMUL => {
                let (rx, ry, rz) = if p.len() < 3 {
                    (param(p, 0, &one), param(p, 1, &two), &nine)
                } else {
                    (&p[0], &p[1], &p[2])
                };
                let (x, y) = match (self.reg(b, regs, rx), self.reg(b, regs, ry)) {
                    (Ok(x), Ok(y)) => (x, y),
                    (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
                };
                let (tx, ty) = (self.ty(x), self.ty(y));
                let fits = tx.dtype == ty.dtype
                    && tx.dtype != DType::Bool
                    && ncp_ir::op::infer_type(Opcode::Matmul, &Imm::None, &[&tx, &ty]).is_ok();
                let v = if fits {
                    self.ir(b, Opcode::Matmul, Imm::None, &[x, y])?
                } else {
                    if self.mode == Mode::Strict {
                        return Ok(Err(Paper(format!(
                            "MATMUL of {tx} and {ty} does not fit; the interpreter multiplies elementwise"
                        ))));
                    }
                    match self.binary(b, Opcode::Mul, x, y)? {
                        Some(v) => v,
                        None => return Ok(Err(Paper("MATMUL falls back to an elementwise multiply that does not broadcast; skipped".into()))),
                    }
                };
                Ok(self.write(regs, rz, v))
            }
            _ => {
                let (rx, rz) = if p.len() < 2 {
                    (param(p, 0, &one), &nine)
                } else {
                    (&p[0], &p[1])
                };
                let x = match self.reg(b, regs, rx) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                };
                let v = if code == op::TRANSPOSE && self.f.ty(x).rank() == 2 {
                    self.ir(b, Opcode::Transpose, Imm::None, &[x])?
                } else {
                    if code == op::TRANSPOSE && self.mode == Mode::Strict {
                        return Ok(Err(Paper(
                            "TRANSPOSE of a value with fewer than 2 dims passes it through".into(),
                        )));
                    }
                    x
                };
                Ok(self.write(regs, rz, v))
            }
        }
    }

    pub(super) fn reduction(
        &mut self,
        b: Block,
        pc: usize,
        o: f64,
        p: &[Json],
        regs: &mut [Option<Value>; NREG],
    ) -> Result<Result<(), Paper>, FormatError> {
        let one = json!(1);
        let m1 = json!(-1);
        let nine = json!(9);
        if self.mode == Mode::Strict && p.len() != 3 {
            return Ok(Err(Paper(format!("takes 3 parameters, got {}", p.len()))));
        }
        let (rx, axis, rz) = if p.len() < 3 {
            (param(p, 0, &one), param(p, 1, &m1), &nine)
        } else {
            (&p[0], &p[1], &p[2])
        };
        let x = match self.reg(b, regs, rx) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let tx = self.ty(x);
        let code = integer_opcode(o);
        let kind = match code {
            op::SUM => Opcode::Sum,
            op::MEAN => Opcode::Mean,
            op::MAX => Opcode::RMax,
            op::MIN => Opcode::RMin,
            op::STD => Opcode::Std,
            _ => {
                self.strict_fail(pc, &format!("unknown reduction opcode {o} acts as MEAN"))?;
                Opcode::Mean
            }
        };
        if tx.is_scalar() {
            if self.mode == Mode::Strict {
                return Ok(Err(Paper(
                    "a reduction of a scalar passes it through".into(),
                )));
            }
            return Ok(self.write(regs, rz, x));
        }
        let nd = tx.rank() as f64;
        let Some(mut a) = py_num(axis) else {
            return Ok(Err(Paper(
                "the axis is not a number; the instruction fails".into(),
            )));
        };
        let mut a_is_int = !is_float(axis) && !matches!(axis, Json::Bool(_));
        if a < 0.0 {
            a += nd;
        }
        if a >= nd {
            self.strict_fail(pc, "the axis is out of range; axis 0 is used")?;
            a = 0.0;
            a_is_int = true;
        }
        if !a_is_int {
            return Ok(Err(Paper(
                "the axis is a float or bool; PyTorch raises TypeError".into(),
            )));
        }
        if a < -nd || a.is_nan() {
            return Ok(Err(Paper(
                "the axis is out of range; PyTorch raises IndexError".into(),
            )));
        }
        let ax = if a < 0.0 { (a + nd) as u32 } else { a as u32 };
        let float_only = matches!(kind, Opcode::Mean | Opcode::Std);
        let v = if float_only && tx.dtype != DType::F32 {
            if self.mode == Mode::Strict {
                return Ok(Err(Paper(
                    "MEAN/STD of an integer or bool tensor raises; the input passes through".into(),
                )));
            }
            x
        } else {
            let xin = if kind == Opcode::Sum && tx.dtype == DType::Bool {
                self.cast(b, x, DType::I64)?
            } else {
                x
            };
            self.ir(b, kind, Imm::Axis(Axis::Index(ax)), &[xin])?
        };
        Ok(self.write(regs, rz, v))
    }

    pub(super) fn nn(
        &mut self,
        b: Block,
        pc: usize,
        o: f64,
        p: &[Json],
        regs: &mut [Option<Value>; NREG],
    ) -> Result<Result<(), Paper>, FormatError> {
        let one = json!(1);
        let two = json!(2);
        let nine = json!(9);
        let code = integer_opcode(o);
        let need = if code == op::MAXIMUM { 3 } else { 2 };
        if self.mode == Mode::Strict && p.len() != 3 {
            return Ok(Err(Paper(format!(
                "neural-network ops write to their third parameter (register 9 when absent); this one has {} (needs {need} operands + destination)",
                p.len()
            ))));
        }
        let rx = param(p, 0, &one);
        let ry = param(p, 1, &two);
        let rz = param(p, 2, &nine);
        let x = match self.reg(b, regs, rx) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let tx = self.ty(x);
        let passthrough = |s: &mut Self,
                           regs: &mut [Option<Value>; NREG],
                           why: &str|
         -> Result<Result<(), Paper>, FormatError> {
            if s.mode == Mode::Strict {
                return Ok(Err(Paper(format!("{why}; the input passes through"))));
            }
            Ok(s.write(regs, rz, x))
        };
        let v = match code {
            op::MAXIMUM => {
                let y = match self.reg(b, regs, ry) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                };
                match self.binary(b, Opcode::Max, x, y)? {
                    Some(v) => v,
                    None => return passthrough(self, regs, "MAX operands do not broadcast"),
                }
            }
            op::RELU => {
                if tx.dtype == DType::Bool {
                    return passthrough(self, regs, "RELU of a bool tensor raises");
                }
                self.ir(b, Opcode::Relu, Imm::None, &[x])?
            }
            op::SIGMOID | op::TANH => {
                let xf = self.cast(b, x, DType::F32)?;
                self.ir(
                    b,
                    if code == op::SIGMOID {
                        Opcode::Sigmoid
                    } else {
                        Opcode::Tanh
                    },
                    Imm::None,
                    &[xf],
                )?
            }
            op::SOFTMAX => {
                if tx.is_scalar() {
                    return passthrough(self, regs, "SOFTMAX of a scalar");
                }
                if tx.dtype != DType::F32 {
                    return passthrough(self, regs, "SOFTMAX of an integer or bool tensor raises");
                }
                self.ir(b, Opcode::Softmax, Imm::None, &[x])?
            }
            _ => {
                self.strict_fail(
                    pc,
                    &format!("unknown neural-network opcode {o} acts as identity"),
                )?;
                x
            }
        };
        Ok(self.write(regs, rz, v))
    }
}

fn rank(d: DType) -> u8 {
    match d {
        DType::Bool => 0,
        DType::I64 => 1,
        DType::F32 => 2,
    }
}

/// PyTorch's promotion between the three dtypes AMM can produce: the higher category wins.
pub fn promote(a: DType, b: DType) -> DType {
    if rank(a) >= rank(b) { a } else { b }
}

/// The integer opcode of `o`, or -1 (no opcode) when `o` has a fractional part.
pub(super) fn integer_opcode(o: f64) -> i64 {
    if o.fract() == 0.0 { o as i64 } else { -1 }
}
