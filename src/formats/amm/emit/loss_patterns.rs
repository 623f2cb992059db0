//! Recognizing AMM's loss ops (MSE, MAE, BCE: 350-352) in the IR a program lowered to, so
//! the emitter gives them back as one instruction.

use super::*;

impl Ctx<'_> {
    /// MSE / MAE / BCE when `mean<all> w` is one: the opcode and its (y_true, y_pred). The
    /// optimizer may have folded part of the pattern away (`x - 0` is `x`, `1.0 * t` is `t`),
    /// so a missing operand is a constant that folds the same way.
    pub(super) fn loss_op(&self, w: Value) -> Option<(i64, P, P)> {
        let p = &self.p;
        let zero = || P::Scratch(json!(0.0));
        let diff = |d: Value| match p.bin(d, Opcode::Sub) {
            Some((a, b)) => (P::Reg(self.unreshape(a, b)), P::Reg(b)),
            None => (P::Reg(d), zero()),
        };
        if let Some(d) = p.un(w, Opcode::Abs) {
            let (a, b) = diff(d);
            return Some((op::MAE, a, b));
        }
        if let Some((d, k)) = p.bin(w, Opcode::Pow) {
            let (a, b) = diff(d);
            return p.is_f32(k, 2.0).then_some((op::MSE, a, b));
        }
        let s = p.un(w, Opcode::Neg)?;
        let (u, v) = p.bin(s, Opcode::Add)?;
        self.bce_terms(u, v)
            .or_else(|| self.bce_terms(v, u))
            .map(|(yt, yp)| (op::BCE, yt, yp))
    }

    /// The loss ops reshape y_true to y_pred's shape when the two do not broadcast but hold
    /// as many elements: `yt` before that reshape.
    pub(super) fn unreshape(&self, yt: Value, yp: Value) -> Value {
        let f = self.f();
        match self.p.def(yt) {
            Some(d) if d.op == Opcode::Reshape => {
                let (t0, tp) = (&f.ty(d.args[0]).shape, &f.ty(yp).shape);
                let reshaped = t0 != tp
                    && broadcast(t0, tp).is_none()
                    && numel_signature(t0) == numel_signature(tp)
                    && f.ty(yt).shape == *tp;
                if reshaped { d.args[0] } else { yt }
            }
            _ => yt,
        }
    }

    /// A term `coef * log(arg)`, with `mul 1, t` and `mul -1, t` simplified: (coef, arg).
    pub(super) fn log_term(&self, t: Value) -> Vec<(Coef, Value)> {
        let p = &self.p;
        let mut out = Vec::new();
        if let Some(x) = p.un(t, Opcode::Log) {
            out.push((Coef::K(1.0), x));
        }
        if let Some(x) = p.un(t, Opcode::Neg).and_then(|l| p.un(l, Opcode::Log)) {
            out.push((Coef::K(-1.0), x));
        }
        if let Some((a, b)) = p.bin(t, Opcode::Mul) {
            for (c, l) in [(a, b), (b, a)] {
                if let Some(x) = p.un(l, Opcode::Log) {
                    out.push(match p.konst(c) {
                        Some(ConstVal::F32(k)) => (Coef::K(k), x),
                        _ => (Coef::V(c), x),
                    });
                }
            }
        }
        out
    }

    /// `y_t * log(c) + (1 - y_t) * log(1 - c)` with `c = min(max(y_p, eps), 1 - eps)`.
    pub(super) fn bce_terms(&self, first: Value, second: Value) -> Option<(P, P)> {
        let p = &self.p;
        let hi = (1.0f64 - EPS as f64) as f32;
        for (c1, clipped) in self.log_term(first) {
            let Some(yp) = p
                .with_const(clipped, Opcode::Min, hi)
                .and_then(|lo| self.with_eps(lo, Opcode::Max))
            else {
                continue;
            };
            for (c2, om) in self.log_term(second) {
                let om_ok = p
                    .bin(om, Opcode::Sub)
                    .is_some_and(|(o, c)| p.is_f32(o, 1.0) && c == clipped);
                let yt = match (c1, c2) {
                    (Coef::V(yt), Coef::V(omt)) if p.is_f32_val(yt) => {
                        let sub = p
                            .bin(omt, Opcode::Sub)
                            .is_some_and(|(o, t)| p.is_f32(o, 1.0) && t == yt);
                        // `1 - (-z)` is simplified to `1 + z`.
                        let add = p
                            .un(yt, Opcode::Neg)
                            .is_some_and(|z| p.with_const(omt, Opcode::Add, 1.0) == Some(z));
                        (sub || add).then_some(P::Reg(yt))
                    }
                    // A constant y_true: `1 - y_true` is folded too.
                    (Coef::K(k), Coef::K(k2)) => {
                        let folded = (1.0f64 - k as f64) as f32;
                        (folded.to_bits() == k2.to_bits())
                            .then(|| const_json(ConstVal::F32(k)).ok().map(P::Scratch))
                            .flatten()
                    }
                    _ => None,
                };
                if let (true, Some(yt)) = (om_ok && p.is_f32_val(yp), yt) {
                    let yt = match yt {
                        P::Reg(v) => P::Reg(self.unreshape(v, yp)),
                        other => other,
                    };
                    return Some((yt, P::Reg(yp)));
                }
            }
        }
        None
    }
}
