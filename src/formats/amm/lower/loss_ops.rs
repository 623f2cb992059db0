//! AMM's loss ops (350-352: MSE, MAE, BCE on registers) and logical ops (400-409), lowered.

use super::ops::{integer_opcode, promote};
use super::{Lowerer, NREG, Paper};
use crate::formats::amm::opcodes as op;
use crate::formats::amm::pyval::param;
use crate::formats::{FormatError, Mode};
use ncp_ir::types::broadcast;
use ncp_ir::{Axis, Block, ConstVal, DType, Imm, Opcode, Value};
use serde_json::{Value as Json, json};

impl Lowerer<'_> {
    pub(in crate::formats::amm) fn loss_op(
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
        if self.mode == Mode::Strict && p.len() != 3 {
            return Ok(Err(Paper(format!("takes 3 parameters, got {}", p.len()))));
        }
        let (rx, ry, rz) = if p.len() < 3 {
            (param(p, 0, &one), param(p, 1, &two), &nine)
        } else {
            (&p[0], &p[1], &p[2])
        };
        let (mut yt, yp) = match (self.reg(b, regs, rx), self.reg(b, regs, ry)) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let code = integer_opcode(o);
        if ![op::MSE, op::MAE, op::BCE].contains(&code) {
            self.strict_fail(pc, &format!("unknown loss opcode {o} acts as MSE"))?;
        }
        let (tt, tp) = (self.ty(yt), self.ty(yp));
        if tt.shape != tp.shape
            && broadcast(&tt.shape, &tp.shape).is_none()
            && ncp_ir::types::numel_signature(&tt.shape)
                == ncp_ir::types::numel_signature(&tp.shape)
        {
            self.strict_fail(pc, "y_true is reshaped to y_pred's shape")?;
            yt = self.ir(b, Opcode::Reshape, Imm::Shape(tp.shape.clone()), &[yt])?;
        }
        let v = match code {
            op::BCE => self.bce(b, yt, yp)?,
            _ => self.mse_mae(b, yt, yp, code == op::MAE)?,
        };
        let v = match v {
            Some(v) => v,
            None => {
                self.strict_fail(
                    pc,
                    "PyTorch raises inside the loss op; it yields the constant 1.0",
                )?;
                self.konst(b, ConstVal::F32(1.0))?
            }
        };
        Ok(self.write(regs, rz, v))
    }

    pub(in crate::formats::amm) fn mean_all(
        &mut self,
        b: Block,
        v: Value,
    ) -> Result<Option<Value>, FormatError> {
        if self.f.ty(v).dtype != DType::F32 {
            return Ok(None);
        }
        Ok(Some(self.ir(
            b,
            Opcode::Mean,
            Imm::Axis(Axis::All),
            &[v],
        )?))
    }

    pub(in crate::formats::amm) fn mse_mae(
        &mut self,
        b: Block,
        yt: Value,
        yp: Value,
        mae: bool,
    ) -> Result<Option<Value>, FormatError> {
        let Some(d) = self.binary(b, Opcode::Sub, yt, yp)? else {
            return Ok(None);
        };
        let e = if mae {
            self.ir(b, Opcode::Abs, Imm::None, &[d])?
        } else {
            let dt = self.f.ty(d).dtype;
            let two = self.konst(
                b,
                if dt == DType::F32 {
                    ConstVal::F32(2.0)
                } else {
                    ConstVal::I64(2)
                },
            )?;
            self.ir(b, Opcode::Pow, Imm::None, &[d, two])?
        };
        self.mean_all(b, e)
    }

    pub(in crate::formats::amm) fn bce(
        &mut self,
        b: Block,
        yt: Value,
        yp: Value,
    ) -> Result<Option<Value>, FormatError> {
        if self.f.ty(yt).dtype == DType::Bool {
            return Ok(None); // `1.0 - y_true` raises for bool
        }
        if broadcast(&self.ty(yt).shape, &self.ty(yp).shape).is_none() {
            return Ok(None);
        }
        let eps = self.specials[4];
        let one = self.konst(b, ConstVal::F32(1.0))?;
        let hi = self.ir(b, Opcode::Sub, Imm::None, &[one, eps])?;
        let ypf = self.cast(b, yp, DType::F32)?;
        let lo_c = self.ir(b, Opcode::Max, Imm::None, &[ypf, eps])?;
        let clipped = self.ir(b, Opcode::Min, Imm::None, &[lo_c, hi])?;
        let log_p = self.ir(b, Opcode::Log, Imm::None, &[clipped])?;
        let om = self.ir(b, Opcode::Sub, Imm::None, &[one, clipped])?;
        let log_1m = self.ir(b, Opcode::Log, Imm::None, &[om])?;
        let ytf = self.cast(b, yt, DType::F32)?;
        let first = self.ir(b, Opcode::Mul, Imm::None, &[ytf, log_p])?;
        let omt = self.ir(b, Opcode::Sub, Imm::None, &[one, ytf])?;
        let second = self.ir(b, Opcode::Mul, Imm::None, &[omt, log_1m])?;
        let s = self.ir(b, Opcode::Add, Imm::None, &[first, second])?;
        let n = self.ir(b, Opcode::Neg, Imm::None, &[s])?;
        self.mean_all(b, n)
    }

    pub(in crate::formats::amm) fn logical(
        &mut self,
        b: Block,
        o: f64,
        p: &[Json],
        regs: &mut [Option<Value>; NREG],
    ) -> Result<Result<(), Paper>, FormatError> {
        let one = json!(1);
        let two = json!(2);
        let nine = json!(9);
        let code = integer_opcode(o);
        match code {
            op::GT | op::GE => {
                if self.mode == Mode::Strict && p.len() != 3 {
                    return Ok(Err(Paper(format!("takes 3 parameters, got {}", p.len()))));
                }
                let (rx, ry, rz) = if p.len() < 3 {
                    (param(p, 0, &one), param(p, 1, &two), &nine)
                } else {
                    (&p[0], &p[1], &p[2])
                };
                let (x, y) = match (self.reg(b, regs, rx), self.reg(b, regs, ry)) {
                    (Ok(x), Ok(y)) => (x, y),
                    (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
                };
                let opc = if code == op::GT {
                    Opcode::Gt
                } else {
                    Opcode::Ge
                };
                match self.binary(b, opc, x, y)? {
                    Some(v) => Ok(self.write(regs, rz, v)),
                    None => Ok(Err(Paper(
                        "the comparison's operands do not broadcast; skipped".into(),
                    ))),
                }
            }
            op::WHERE => {
                if p.len() < 4 {
                    return Ok(Err(Paper(
                        "WHERE needs 4 parameters; the instruction fails".into(),
                    )));
                }
                if self.mode == Mode::Strict && p.len() > 4 {
                    return Ok(Err(Paper(format!("takes 4 parameters, got {}", p.len()))));
                }
                let (x, y, e) = match (
                    self.reg(b, regs, &p[0]),
                    self.reg(b, regs, &p[1]),
                    self.reg(b, regs, &p[3]),
                ) {
                    (Ok(x), Ok(y), Ok(e)) => (x, y, e),
                    (Err(er), _, _) | (_, Err(er), _) | (_, _, Err(er)) => return Ok(Err(er)),
                };
                let Some(cond) = self.binary(b, Opcode::Ge, x, y)? else {
                    return Ok(Err(Paper(
                        "WHERE's comparison does not broadcast; nothing is written".into(),
                    )));
                };
                let (tc, tx, te) = (self.ty(cond), self.ty(x), self.ty(e));
                let fits = broadcast(&tc.shape, &tx.shape)
                    .and_then(|s| broadcast(&s, &te.shape))
                    .is_some();
                if !fits {
                    return Ok(Err(Paper(
                        "WHERE's operands do not broadcast; nothing is written".into(),
                    )));
                }
                let d = promote(tx.dtype, te.dtype);
                let xc = self.cast(b, x, d)?;
                let ec = self.cast(b, e, d)?;
                let v = self.ir(b, Opcode::Select, Imm::None, &[cond, xc, ec])?;
                Ok(self.write(regs, &p[2], v))
            }
            _ => Ok(Err(Paper(format!(
                "unsupported logical opcode {o}; skipped"
            )))),
        }
    }
}
