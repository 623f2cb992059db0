//! Standalone ops: each emits its own loops over stored operands.

use super::Gen;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value as CV, types};
use ncp_ir::{Axis, DType, Dim, Imm, Inst, Opcode};

/// Emit standalone op `i`.
pub(super) fn op(g: &mut Gen, i: Inst) {
    let f = g.f();
    let d = &f.insts[i];
    let x = d.args[0];
    let xs = f.ty(x).shape.clone();
    let out_ty = f.ty(d.result).clone();
    let axis = match d.imm {
        Imm::Axis(a) => a,
        _ => Axis::All,
    };
    match d.op {
        Opcode::Sum | Opcode::Mean | Opcode::RMax | Opcode::RMin | Opcode::Std => {
            reduce(g, i, axis)
        }
        Opcode::MaxMask | Opcode::MinMask => mask(g, i, axis),
        Opcode::Count => {
            let ds: Vec<Dim> = match axis {
                Axis::All => xs.clone(),
                Axis::Index(a) => vec![xs[a as usize]],
            };
            let n = g.count_of(&ds);
            let v = g.b.ins().fcvt_from_sint(types::F32, n);
            g.set_scalar(d.result, v);
        }
        Opcode::AnyNonzero => {
            let var = g.b.declare_var(types::I8);
            let z = g.b.ins().iconst(types::I8, 0);
            g.b.def_var(var, z);
            let dt = f.ty(x).dtype;
            g.loops(&xs.clone(), &mut |g: &mut Gen, idx: &[CV]| {
                let v = g.read(x, &xs, idx);
                let nz = match dt {
                    DType::F32 => {
                        let zero = g.f32c(0.0);
                        g.b.ins().fcmp(FloatCC::NotEqual, v, zero)
                    }
                    _ => g.b.ins().icmp_imm_s(IntCC::NotEqual, v, 0),
                };
                let cur = g.b.use_var(var);
                let n = g.b.ins().bor(cur, nz);
                g.b.def_var(var, n);
            });
            let v = g.b.use_var(var);
            g.set_scalar(d.result, v);
        }
        Opcode::Reshape if out_ty.is_scalar() => {
            // The one element of a one-element tensor.
            let zero = g.b.ins().iconst(types::I64, 0);
            let idx = vec![zero; xs.len()];
            let v = g.read(x, &xs, &idx);
            g.set_scalar(d.result, v);
        }
        Opcode::Transpose | Opcode::Reshape => {
            // Materialize: transpose reads x[j, i]; reshape copies a view row-major.
            let slot = g.slot_of(d.result);
            let dt = out_ty.dtype;
            if d.op == Opcode::Transpose {
                let os = out_ty.shape.clone();
                g.loops(&os.clone(), &mut |g: &mut Gen, idx: &[CV]| {
                    let v = g.read(x, &xs, &[idx[1], idx[0]]);
                    g.write(slot, &os, idx, v, dt);
                });
            } else {
                let counter = g.b.declare_var(types::I64);
                let z = g.b.ins().iconst(types::I64, 0);
                g.b.def_var(counter, z);
                g.loops(&xs.clone(), &mut |g: &mut Gen, idx: &[CV]| {
                    let v = g.read(x, &xs, idx);
                    let k = g.b.use_var(counter);
                    g.write(slot, &[Dim::Fixed(1)], &[k], v, dt);
                    let k1 = g.b.ins().iadd_imm_s(k, 1);
                    g.b.def_var(counter, k1);
                });
            }
        }
        Opcode::Softmax => g.softmax(i),
        Opcode::Exp | Opcode::Log | Opcode::Sigmoid => g.vector_call(i),
        Opcode::Matmul => matmul(g, i),
        Opcode::SumTo if out_ty.is_scalar() => {
            let acc = g.b.declare_var(types::F64);
            let z = g.b.ins().f64const(0.0);
            g.b.def_var(acc, z);
            g.loops(&xs.clone(), &mut |g: &mut Gen, idx: &[CV]| {
                let v = g.read(x, &xs, idx);
                let c = g.b.use_var(acc);
                let n = g.combine(Opcode::Sum, c, v);
                g.b.def_var(acc, n);
            });
            let a = g.b.use_var(acc);
            let v = g.b.ins().fdemote(types::F32, a);
            g.set_scalar(d.result, v);
        }
        Opcode::SumTo => {
            // Per output element, sum (in f64, in the interpreter's order) over the dims that
            // were broadcast.
            let slot = g.slot_of(d.result);
            let os = out_ty.shape.clone();
            let off = xs.len() - os.len();
            let summed: Vec<usize> = (0..xs.len())
                .filter(|&k| k < off || (os[k - off] == Dim::Fixed(1) && xs[k] != Dim::Fixed(1)))
                .collect();
            let sdims: Vec<Dim> = summed.iter().map(|k| xs[*k]).collect();
            g.loops(&os.clone(), &mut |g: &mut Gen, oidx: &[CV]| {
                let acc = g.b.declare_var(types::F64);
                let z = g.b.ins().f64const(0.0);
                g.b.def_var(acc, z);
                g.loops(&sdims.clone(), &mut |g: &mut Gen, sidx: &[CV]| {
                    let zero = g.b.ins().iconst(types::I64, 0);
                    let xidx: Vec<CV> = (0..xs.len())
                        .map(|k| match summed.iter().position(|s| *s == k) {
                            Some(p) => sidx[p],
                            None if os[k - off] == Dim::Fixed(1) => zero,
                            None => oidx[k - off],
                        })
                        .collect();
                    let v = g.read(x, &xs, &xidx);
                    let vd = g.b.ins().fpromote(types::F64, v);
                    let c = g.b.use_var(acc);
                    let n = g.b.ins().fadd(c, vd);
                    g.b.def_var(acc, n);
                });
                let a = g.b.use_var(acc);
                let v = g.b.ins().fdemote(types::F32, a);
                g.write(slot, &os, oidx, v, DType::F32);
            });
        }
        other => {
            g.unsupported(format!("op `{}` as a standalone loop", other.name()));
        }
    }
}

/// Reductions that could not be fused: over all elements, or one axis of a rank-1/2 value.
fn reduce(g: &mut Gen, i: Inst, axis: Axis) {
    let f = g.f();
    let d = &f.insts[i];
    let (x, op) = (d.args[0], d.op);
    let xs = f.ty(x).shape.clone();
    if xs.is_empty() {
        let v = g.read(x, &xs, &[]);
        let out = if op == Opcode::Std {
            g.f32c(f32::NAN)
        } else {
            v
        };
        g.set_scalar(d.result, out);
        return;
    }
    // (outer extent, inner extent, index builder) for slices.
    let (outer, inner): (Vec<Dim>, Vec<Dim>) = match (xs.len(), axis) {
        (_, Axis::All) => (vec![], xs.clone()),
        (1, _) => (vec![], xs.clone()),
        (_, Axis::Index(1)) => (vec![xs[0]], vec![xs[1]]),
        _ => (vec![xs[1]], vec![xs[0]]),
    };
    let swap = xs.len() == 2 && axis == Axis::Index(0);
    let idx_of = move |o: Option<CV>, inner_idx: &[CV]| -> Vec<CV> {
        match (o, swap) {
            (None, _) => inner_idx.to_vec(),
            (Some(o), false) => vec![o, inner_idx[0]],
            (Some(o), true) => vec![inner_idx[0], o],
        }
    };
    let slice = |g: &mut Gen, o: Option<CV>| -> CV {
        let n = g.count_of(&inner);
        if op == Opcode::Std {
            let acc = g.b.declare_var(types::F64);
            let z = g.b.ins().f64const(0.0);
            g.b.def_var(acc, z);
            g.loops(&inner.clone(), &mut |g: &mut Gen, ii: &[CV]| {
                let v = g.read(x, &xs, &idx_of(o, ii));
                let c = g.b.use_var(acc);
                let n2 = g.combine(Opcode::Sum, c, v);
                g.b.def_var(acc, n2);
            });
            let s = g.b.use_var(acc);
            let nf = g.b.ins().fcvt_from_sint(types::F64, n);
            let mean = g.b.ins().fdiv(s, nf);
            let ss = g.b.declare_var(types::F64);
            g.b.def_var(ss, z);
            g.loops(&inner.clone(), &mut |g: &mut Gen, ii: &[CV]| {
                let v = g.read(x, &xs, &idx_of(o, ii));
                let vd = g.b.ins().fpromote(types::F64, v);
                let dv = g.b.ins().fsub(vd, mean);
                let sq = g.b.ins().fmul(dv, dv);
                let c = g.b.use_var(ss);
                let n2 = g.b.ins().fadd(c, sq);
                g.b.def_var(ss, n2);
            });
            let total = g.b.use_var(ss);
            let one = g.b.ins().f64const(1.0);
            let dof = g.b.ins().fsub(nf, one);
            let var = g.b.ins().fdiv(total, dof);
            let sd = g.b.ins().sqrt(var);
            g.b.ins().fdemote(types::F32, sd)
        } else {
            let is_max = matches!(op, Opcode::RMax | Opcode::RMin);
            let acc =
                g.b.declare_var(if is_max { types::F32 } else { types::F64 });
            let init = g.acc_start(i, op);
            g.b.def_var(acc, init);
            let dt = f.ty(x).dtype;
            g.loops(&inner.clone(), &mut |g: &mut Gen, ii: &[CV]| {
                let v = g.read(x, &xs, &idx_of(o, ii));
                let v = if dt == DType::Bool { bool_f32(g, v) } else { v };
                let c = g.b.use_var(acc);
                let n2 = g.combine(op, c, v);
                g.b.def_var(acc, n2);
            });
            let a = g.b.use_var(acc);
            g.acc_carry_out(i, a);
            g.finish(op, a, n)
        }
    };
    if outer.is_empty() {
        let v = slice(g, None);
        let v = g.as_dtype(v, f.ty(d.result).dtype);
        g.set_scalar(d.result, v);
    } else {
        let slot = g.slot_of(d.result);
        let m = g.dim_of(outer[0]);
        g.loop_n(m, |g, o| {
            // Bool results (max/min of bool) are already 0.0/1.0 here.
            let v = slice(g, Some(o));
            g.write(slot, &outer, &[o], v, DType::F32);
        });
    }
}

fn bool_f32(g: &mut Gen, c: CV) -> CV {
    let one = g.f32c(1.0);
    let zero = g.f32c(0.0);
    g.b.ins().select(c, one, zero)
}

/// The elements a max/min reduction selects: the first extremum per slice along an axis,
/// every extremum over all elements.
fn mask(g: &mut Gen, i: Inst, axis: Axis) {
    let f = g.f();
    let d = &f.insts[i];
    let x = d.args[0];
    let xs = f.ty(x).shape.clone();
    if xs.is_empty() {
        // A scalar is its own extremum.
        let t = g.b.ins().iconst(types::I8, 1);
        g.set_scalar(d.result, t);
        return;
    }
    let slot = g.slot_of(d.result);
    let op = if d.op == Opcode::MaxMask {
        Opcode::RMax
    } else {
        Opcode::RMin
    };
    let dt = f.ty(x).dtype;
    let to_f = move |g: &mut Gen, v: CV| if dt == DType::Bool { bool_f32(g, v) } else { v };
    if axis == Axis::All || xs.len() == 1 {
        let acc = g.b.declare_var(types::F32);
        let init = g.acc_init(op);
        g.b.def_var(acc, init);
        g.loops(&xs.clone(), &mut |g: &mut Gen, idx: &[CV]| {
            let v = g.read(x, &xs, idx);
            let v = to_f(g, v);
            let c = g.b.use_var(acc);
            let n = g.combine(op, c, v);
            g.b.def_var(acc, n);
        });
        let best = g.b.use_var(acc);
        let best_nan = g.b.ins().fcmp(FloatCC::Unordered, best, best);
        let first_only = xs.len() == 1 && axis != Axis::All;
        let taken = g.b.declare_var(types::I8);
        let z8 = g.b.ins().iconst(types::I8, 0);
        g.b.def_var(taken, z8);
        g.loops(&xs.clone(), &mut |g: &mut Gen, idx: &[CV]| {
            let v = g.read(x, &xs, idx);
            let v = to_f(g, v);
            let eq = g.b.ins().fcmp(FloatCC::Equal, v, best);
            let vnan = g.b.ins().fcmp(FloatCC::Unordered, v, v);
            let hit = g.b.ins().select(best_nan, vnan, eq);
            let hit = if first_only {
                let t = g.b.use_var(taken);
                let not_t = g.b.ins().icmp_imm_s(IntCC::Equal, t, 0);
                let h = g.b.ins().band(hit, not_t);
                let nt = g.b.ins().bor(t, h);
                g.b.def_var(taken, nt);
                h
            } else {
                hit
            };
            g.write(slot, &xs, idx, hit, DType::Bool);
        });
        return;
    }
    // Along one axis of a rank-2 value: per slice, find the first extremum, then mark it.
    let (o_dim, i_dim, swap) = if axis == Axis::Index(1) {
        (xs[0], xs[1], false)
    } else {
        (xs[1], xs[0], true)
    };
    let m = g.dim_of(o_dim);
    g.loop_n(m, |g, o| {
        let n = g.dim_of(i_dim);
        let at = |o: CV, k: CV| if swap { vec![k, o] } else { vec![o, k] };
        let acc = g.b.declare_var(types::F32);
        let init = g.acc_init(op);
        g.b.def_var(acc, init);
        let best_i = g.b.declare_var(types::I64);
        let z = g.b.ins().iconst(types::I64, 0);
        g.b.def_var(best_i, z);
        g.loop_n(n, |g, k| {
            let v = g.read(x, &xs, &at(o, k));
            let v = to_f(g, v);
            let c = g.b.use_var(acc);
            let nv = g.combine(op, c, v);
            // The index moves when the accumulator changes value (first extremum wins;
            // the first NaN sticks).
            let moved = g.b.ins().fcmp(FloatCC::NotEqual, nv, c);
            let c_ok = g.b.ins().fcmp(FloatCC::Ordered, c, c);
            let changed = g.b.ins().band(moved, c_ok);
            let cur_i = g.b.use_var(best_i);
            let ni = g.b.ins().select(changed, k, cur_i);
            g.b.def_var(best_i, ni);
            g.b.def_var(acc, nv);
        });
        let bi = g.b.use_var(best_i);
        g.loop_n(n, |g, k| {
            let hit = g.b.ins().icmp(IntCC::Equal, k, bi);
            g.write(slot, &xs, &at(o, k), hit, DType::Bool);
        });
    });
}

fn matmul(g: &mut Gen, i: Inst) {
    let f = g.f();
    let d = &f.insts[i];
    let (a, b) = (d.args[0], d.args[1]);
    let (sa, sb) = (f.ty(a).shape.clone(), f.ty(b).shape.clone());
    let rs = f.ty(d.result).shape.clone();
    let k_dim = *sa.last().expect("matmul operands have rank >= 1");
    let dot = |g: &mut Gen, ai: Option<CV>, bj: Option<CV>| -> CV {
        let acc = g.b.declare_var(types::F64);
        let z = g.b.ins().f64const(0.0);
        g.b.def_var(acc, z);
        let n = g.dim_of(k_dim);
        g.loop_n(n, |g, k| {
            let ia: Vec<CV> = match ai {
                Some(r) => vec![r, k],
                None => vec![k],
            };
            let ib: Vec<CV> = match bj {
                Some(c) => vec![k, c],
                None => vec![k],
            };
            let x = g.read(a, &sa, &ia);
            let y = g.read(b, &sb, &ib);
            let xd = g.b.ins().fpromote(types::F64, x);
            let yd = g.b.ins().fpromote(types::F64, y);
            let p = g.b.ins().fmul(xd, yd);
            let c = g.b.use_var(acc);
            let s = g.b.ins().fadd(c, p);
            g.b.def_var(acc, s);
        });
        let s = g.b.use_var(acc);
        g.b.ins().fdemote(types::F32, s)
    };
    let a2 = sa.len() == 2;
    let b2 = sb.len() == 2;
    if rs.is_empty() {
        let v = dot(g, None, None);
        g.set_scalar(d.result, v);
        return;
    }
    let slot = g.slot_of(d.result);
    let rs2 = rs.clone();
    g.loops(&rs.clone(), &mut |g: &mut Gen, idx: &[CV]| {
        let (ai, bj) = match (a2, b2) {
            (true, true) => (Some(idx[0]), Some(idx[1])),
            (true, false) => (Some(idx[0]), None),
            (false, true) => (None, Some(idx[0])),
            (false, false) => (None, None),
        };
        let v = dot(g, ai, bj);
        g.write(slot, &rs2, idx, v, DType::F32);
    });
}
