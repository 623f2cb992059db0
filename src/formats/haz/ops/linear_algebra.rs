//! HAZ's vector and matrix ops (dot, matmul, transpose, outer, fill, repeat) lowered to the
//! IR over logical shapes.

use super::*;

impl Emit {
    /// `torch.dot`.
    pub fn dot(&mut self, a: &Tv, b: &Tv) -> R<Tv> {
        if a.shape.len() != 1 || b.shape.len() != 1 {
            return fault(format!(
                "dot needs two 1-D tensors, got {}-D and {}-D",
                a.shape.len(),
                b.shape.len()
            ));
        }
        if !self.deq(a.shape[0], b.shape[0])? {
            return fault(format!(
                "dot of tensors of sizes {} and {}",
                a.shape[0], b.shape[0]
            ));
        }
        let p = self.op2(Opcode::Mul, a.v, b.v)?;
        let s = self.all(Opcode::Sum, p)?;
        let ps = self.ir_shape(p);
        let v = self.times_copies(s, &a.shape, &ps)?;
        Ok(Tv {
            v,
            shape: Vec::new(),
            rg: a.rg || b.rg,
            dp: a.dp || b.dp,
        })
    }

    /// `torch.matmul` with its full rules (1-D operands promoted, batch dims broadcast),
    /// computed as a broadcast product summed over the inner axis.
    pub fn matmul(&mut self, a: &Tv, b: &Tv) -> R<Tv> {
        let (ra, rb) = (a.shape.len(), b.shape.len());
        if ra == 0 || rb == 0 {
            return fault("both arguments to matmul need to be at least 1-D");
        }
        let mut al = a.shape.clone();
        let mut ai = self.pad(a.v, ra)?;
        if ra == 1 {
            al.insert(0, Dim::Fixed(1));
            let mut s = self.ir_shape(ai);
            s.insert(0, Dim::Fixed(1));
            ai = self.reshape(ai, s)?;
        }
        let mut bl = b.shape.clone();
        let mut bi = self.pad(b.v, rb)?;
        if rb == 1 {
            bl.push(Dim::Fixed(1));
            let mut s = self.ir_shape(bi);
            s.push(Dim::Fixed(1));
            bi = self.reshape(bi, s)?;
        }
        let (n, k) = (al[al.len() - 2], al[al.len() - 1]);
        let (k2, m) = (bl[bl.len() - 2], bl[bl.len() - 1]);
        if !self.deq(k, k2)? {
            return fault(format!(
                "matmul shapes {} and {} cannot be multiplied",
                show(&a.shape),
                show(&b.shape)
            ));
        }
        let Some(mut shape) = self.bcast(&al[..al.len() - 2], &bl[..bl.len() - 2])? else {
            return fault(format!(
                "matmul batch dims of {} and {} do not broadcast",
                show(&a.shape),
                show(&b.shape)
            ));
        };
        let mut xs = self.ir_shape(ai);
        xs.push(Dim::Fixed(1));
        let x = self.reshape(ai, xs)?;
        let mut ys = self.ir_shape(bi);
        ys.insert(ys.len() - 2, Dim::Fixed(1));
        let y = self.reshape(bi, ys)?;
        let p = self.op2(Opcode::Mul, x, y)?;
        let ps = self.ir_shape(p);
        let ax = ps.len() - 2;
        let s = self.axis(Opcode::Sum, ax, p)?;
        let mut v = self.times_copies(s, &[k], &ps[ax..ax + 1])?;
        shape.push(n);
        shape.push(m);
        let mut vs = self.ir_shape(v);
        if rb == 1 {
            shape.pop();
            vs.pop();
        }
        if ra == 1 {
            shape.remove(shape.len() - 1 - usize::from(rb != 1));
            vs.remove(vs.len() - 1 - usize::from(rb != 1));
        }
        v = self.reshape(v, vs)?;
        Ok(Tv {
            v,
            shape,
            rg: a.rg || b.rg,
            dp: a.dp || b.dp,
        })
    }

    /// `a.t()`.
    pub fn transpose(&mut self, a: &Tv) -> R<Tv> {
        match a.shape.len() {
            0 | 1 => Ok(a.clone()),
            2 => {
                let w = self.pad(a.v, 2)?;
                let v = self.op1(Opcode::Transpose, w)?;
                Ok(Tv {
                    v,
                    shape: vec![a.shape[1], a.shape[0]],
                    ..a.clone()
                })
            }
            r => fault(format!("t() expects at most 2 dims, got {r}")),
        }
    }

    /// `torch.outer`.
    pub fn outer(&mut self, a: &Tv, b: &Tv) -> R<Tv> {
        if a.shape.len() != 1 || b.shape.len() != 1 {
            return fault(format!(
                "outer needs two 1-D tensors, got {}-D and {}-D",
                a.shape.len(),
                b.shape.len()
            ));
        }
        let x = self.pad(a.v, 1)?;
        let mut s = self.ir_shape(x);
        s.push(Dim::Fixed(1));
        let x = self.reshape(x, s)?;
        let y = self.pad(b.v, 1)?;
        let mut s = self.ir_shape(y);
        s.insert(0, Dim::Fixed(1));
        let y = self.reshape(y, s)?;
        let v = self.op2(Opcode::Mul, x, y)?;
        Ok(Tv {
            v,
            shape: vec![a.shape[0], b.shape[0]],
            rg: a.rg || b.rg,
            dp: a.dp || b.dp,
        })
    }

    /// `torch.full((n,), a.item())`: detached, so it carries no gradient.
    pub fn fill(&mut self, a: &Tv, n: Dim) -> R<Tv> {
        if !is_one(&a.shape) {
            return fault(format!(
                "item() of a tensor of shape {} (needs exactly one element)",
                show(&a.shape)
            ));
        }
        let s = self.reshape(a.v, Vec::new())?;
        let v = if a.dp { self.detach(s)? } else { s };
        Ok(Tv {
            v,
            shape: vec![n],
            rg: false,
            dp: false,
        })
    }

    /// `a.repeat(r, 1)`.
    pub fn repeat(&mut self, a: &Tv, r: Dim) -> R<Tv> {
        match a.shape.len() {
            0 | 1 => {
                let w = self.pad(a.v, 1)?;
                let mut s = self.ir_shape(w);
                s.insert(0, Dim::Fixed(1));
                let v = self.reshape(w, s)?;
                let n = a.shape.first().copied().unwrap_or(Dim::Fixed(1));
                Ok(Tv {
                    v,
                    shape: vec![r, n],
                    ..a.clone()
                })
            }
            2 => {
                let (p, q) = (a.shape[0], a.shape[1]);
                if r == Dim::Fixed(1) {
                    return Ok(a.clone());
                }
                let w = self.pad(a.v, 2)?;
                let ws = self.ir_shape(w);
                let rp = match (r, p) {
                    (_, Dim::Fixed(1)) => r,
                    (Dim::Fixed(x), Dim::Fixed(y)) => {
                        Dim::Fixed(x.checked_mul(y).ok_or_else(|| FormatError::Haz {
                            place: "repeat".into(),
                            msg: "the repeated tensor is too large".into(),
                        })?)
                    }
                    _ => {
                        return Err(Stop::Err(FormatError::Haz {
                            place: DIMS_PLACE.into(),
                            msg: format!(
                                "repeating a tensor of shape {} {r} times gives a size that is a product of dims; compile for concrete dims",
                                show(&a.shape)
                            ),
                        }));
                    }
                };
                if ws[0] == Dim::Fixed(1) {
                    return Ok(Tv {
                        v: w,
                        shape: vec![rp, q],
                        ..a.clone()
                    });
                }
                let Some(like) = self.like_of(&[r, p, ws[1]], &[w])? else {
                    self.unsupported.get_or_insert(format!(
                        "ncpc cannot represent repeating a tensor of shape {} {r} times (no input has a dim of that size to build it from)",
                        show(&a.shape)
                    ));
                    return Ok(Tv {
                        v: self.c(0.0)?,
                        shape: vec![rp, q],
                        dp: false,
                        ..a.clone()
                    });
                };
                let x = self.reshape(w, vec![Dim::Fixed(1), p, ws[1]])?;
                let y = self.op2(Opcode::BroadcastLike, x, like)?;
                let v = self.reshape(y, vec![rp, ws[1]])?;
                Ok(Tv {
                    v,
                    shape: vec![rp, q],
                    ..a.clone()
                })
            }
            d => fault(format!(
                "repeat with 2 repeat dims of a {d}-D tensor (needs at most 2 dims)"
            )),
        }
    }
}
