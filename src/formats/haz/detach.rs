//! Cutting the gradient like torch's `.item()`: a value rebuilt through integers.

use super::ops::{Emit, R};
use ncp_ir::{DType, Imm, Opcode, Value};

impl Emit {
    /// The value of the f32 scalar `x` rebuilt through integers, so that the gradient pass
    /// sees no dependence on `x` (torch's `.item()`). Exact for every f32, -0, the
    /// infinities and NaN included.
    pub(super) fn detach(&mut self, x: Value) -> R<Value> {
        // Each step takes up to 61 bits of `x` above granularity 2^e; five steps cover
        // 2^127 down to 2^-149. Scale factors beyond f32's range are applied in two halves.
        const STEPS: [i32; 5] = [66, 5, -56, -117, -178];
        let mut rest = x;
        let mut acc: Option<Value> = None;
        for e in STEPS {
            let t = self.scale(rest, -e)?;
            let k = self.op1(Opcode::Round, t)?;
            let ki = self.ins(Opcode::Cast, Imm::DType(DType::I64), &[k])?;
            let kf = self.ins(Opcode::Cast, Imm::DType(DType::F32), &[ki])?;
            let piece = self.scale(kf, e)?;
            acc = Some(match acc {
                Some(a) => self.op2(Opcode::Add, a, piece)?,
                None => piece,
            });
            let taken = self.scale(k, e)?;
            rest = self.op2(Opcode::Sub, rest, taken)?;
        }
        let mut out = match acc {
            Some(a) => a,
            None => self.c(0.0)?,
        };
        let specials = [
            (f32::INFINITY, f32::INFINITY),
            (f32::NEG_INFINITY, f32::NEG_INFINITY),
        ];
        for (probe, val) in specials {
            let p = self.c(probe)?;
            let hit = self.op2(Opcode::Eq, x, p)?;
            let v = self.c(val)?;
            out = self.select(hit, v, out)?;
        }
        // -0: equal to 0 and its reciprocal is -inf.
        let zero = self.c(0.0)?;
        let is0 = self.op2(Opcode::Eq, x, zero)?;
        let r = self.op1(Opcode::Recip, x)?;
        let ninf = self.c(f32::NEG_INFINITY)?;
        let rneg = self.op2(Opcode::Eq, r, ninf)?;
        let neg0 = self.op2(Opcode::Mul, is0, rneg)?;
        let nz = self.c(-0.0)?;
        out = self.select(neg0, nz, out)?;
        let ok = self.op2(Opcode::Eq, x, x)?;
        let nan = self.c(f32::NAN)?;
        self.select(ok, out, nan)
    }

    /// `v * 2^e`, split into two multiplications when `2^e` is not an f32.
    fn scale(&mut self, v: Value, e: i32) -> R<Value> {
        let mut out = v;
        let mut left = e;
        while left != 0 {
            let step = left.clamp(-100, 100);
            let k = self.c(2f32.powi(step))?;
            out = self.op2(Opcode::Mul, out, k)?;
            left -= step;
        }
        Ok(out)
    }
}
