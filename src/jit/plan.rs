//! Scheduling the gradient IR into fused loops.
//!
//! A straight-line function is cut into stages: scalar instructions (emitted inline, outside
//! any loop), fused groups (one loop nest over one shape computing a chain of elementwise ops,
//! with `sum`/`mean`/`reduce_max`/`reduce_min` of the chain accumulated in the same pass), and
//! standalone ops (matmul, softmax, std, transpose, ...). A value computed inside a group lives
//! in a register and is stored to a buffer only when something outside the group reads it.
//! `expand`, `broadcast_like` and `reshape` of stored values are views: no code, just strides.

use ncp_ir::op::Class;
use ncp_ir::{Axis, DType, Dim, Function, Imm, Inst, Opcode, Terminator, Value};
use std::collections::{HashMap, HashSet};

/// Why the JIT does not take a function (the interpreter runs it instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not supported by the JIT: {0}")]
pub struct Unsupported(pub String);

/// One step of the schedule.
#[derive(Debug, Clone)]
pub enum Stage {
    /// A scalar instruction, computed once.
    Scalar(Inst),
    /// A fused loop nest.
    Group(Group),
    /// An op with its own loops.
    Op(Inst),
}

/// Elementwise instructions over one shape, plus reductions of them, in one pass.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The iteration shape (rank 1 or 2).
    pub shape: Vec<Dim>,
    /// Elementwise members in order.
    pub insts: Vec<Inst>,
    /// Fused reductions of members.
    pub reductions: Vec<Inst>,
}

/// How a value is held at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// A scalar SSA value.
    Scalar,
    /// Computed inside group `g`; in a register there, stored to a buffer if `stored`.
    InGroup(usize),
    /// The result of a fused reduction of group `g` (available after its loop).
    Reduced(usize),
    /// A buffer of its own (written by an op or a group).
    Buffer,
    /// A view of another value's buffer (expand / broadcast / reshape).
    View(Value),
}

/// The schedule of a function.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Stages in execution order.
    pub stages: Vec<Stage>,
    /// Where each value lives.
    pub homes: HashMap<Value, Home>,
    /// Group values that must be written to a buffer.
    pub stored: HashSet<Value>,
    /// The returned values.
    pub returns: Vec<Value>,
}

/// Whether operand `k` of `op` is read for its elements (not only for its shape, as the
/// `like` operand of `expand`/`broadcast_like`/`sum_to` and the operand of `count`,
/// `ones_like` and `zeros_like` are).
pub fn reads_value(op: Opcode, k: usize) -> bool {
    match op {
        Opcode::Expand | Opcode::BroadcastLike | Opcode::SumTo => k == 0,
        Opcode::Count | Opcode::OnesLike | Opcode::ZerosLike => false,
        _ => true,
    }
}

fn fusable_reduction(f: &Function, inst: Inst) -> bool {
    let d = &f.insts[inst];
    if !matches!(
        d.op,
        Opcode::Sum | Opcode::Mean | Opcode::RMax | Opcode::RMin
    ) {
        return false;
    }
    let rank = f.ty(d.args[0]).rank();
    match d.imm {
        Imm::Axis(Axis::All) => true,
        // Column sums would need f64 column accumulators to match the interpreter bit for
        // bit; they run as standalone ops instead. Column max/min are exact either way.
        Imm::Axis(Axis::Index(1)) => rank == 2,
        Imm::Axis(Axis::Index(0)) => rank == 2 && matches!(d.op, Opcode::RMax | Opcode::RMin),
        _ => false,
    }
}

/// Schedule `f`, or say why the JIT cannot run it.
pub fn plan(f: &Function) -> Result<Plan, Unsupported> {
    plan_for(f, false)
}

/// Whether instruction `i` runs as a call on whole buffers ([`ncp_ir::vmath`]) when the
/// kernel uses vector calls: exp, log or sigmoid of a non-scalar f32 value held in a buffer
/// of its own shape (not a view, whose elements are not contiguous).
fn vector_call(f: &Function, i: Inst, homes: &HashMap<Value, Home>) -> bool {
    let d = &f.insts[i];
    let x = d.args.first().copied();
    matches!(d.op, Opcode::Exp | Opcode::Log | Opcode::Sigmoid)
        && !f.ty(d.result).is_scalar()
        && x.is_some_and(|x| {
            f.ty(x).dtype == DType::F32
                && f.ty(x).shape == f.ty(d.result).shape
                && !matches!(
                    homes.get(&x),
                    Some(Home::View(_)) | Some(Home::Scalar) | None
                )
        })
}

/// [`plan`], with exp, log and sigmoid of buffers as standalone ops when `vector_calls`
/// (`Jit::wide_calls`, on where the CPU has wide lanes): their operands are stored and the
/// kernel calls [`ncp_ir::vmath`] on the whole buffer.
pub fn plan_for(f: &Function, vector_calls: bool) -> Result<Plan, Unsupported> {
    if !f.is_straight_line() {
        return Err(Unsupported(
            "control flow (AMM jumps); the interpreter runs it".into(),
        ));
    }
    let block = f.entry();
    let Terminator::Return(returns) = &f.blocks[block].term else {
        return Err(Unsupported("the function always traps".into()));
    };
    let mut homes: HashMap<Value, Home> = HashMap::new();
    // Stage position at which each value becomes available (-1: before everything).
    let mut avail: HashMap<Value, i64> = HashMap::new();
    for &p in &f.blocks[block].params {
        homes.insert(p, Home::Buffer);
        avail.insert(p, -1);
    }
    // Scalars that depend on no data (constants, dims, counts and arithmetic on them) go to
    // a prologue, so every loop can use them.
    let mut prologue: Vec<Stage> = Vec::new();
    let mut indep: HashSet<Value> = HashSet::new();
    let mut stages: Vec<Stage> = Vec::new();
    // For each group: its stage position.
    let mut group_pos: Vec<usize> = Vec::new();
    for &i in &f.blocks[block].insts {
        let d = &f.insts[i];
        let ty = f.ty(d.result);
        if ty.rank() > 2 || d.args.iter().any(|a| f.ty(*a).rank() > 2) {
            return Err(Unsupported("a value of rank above 2".into()));
        }
        if ty.dtype == DType::I64 && !ty.is_scalar() {
            return Err(Unsupported("a non-scalar integer tensor".into()));
        }
        let class = d.op.info().class;
        let scalar_view = matches!(d.op, Opcode::Expand | Opcode::BroadcastLike) && ty.is_scalar();
        let scalar_like = class == Class::Leaf
            || (d.op.is_elementwise() && ty.is_scalar())
            || scalar_view
            || d.op == Opcode::Count;
        if scalar_like {
            let data_free = class == Class::Leaf
                || d.op == Opcode::Count
                || d.args
                    .iter()
                    .enumerate()
                    .all(|(k, a)| !reads_value(d.op, k) || indep.contains(a));
            homes.insert(d.result, Home::Scalar);
            let stage = if d.op == Opcode::Count {
                Stage::Op(i)
            } else {
                Stage::Scalar(i)
            };
            if data_free {
                indep.insert(d.result);
                prologue.push(stage);
                avail.insert(d.result, -1);
            } else {
                avail.insert(d.result, stages.len() as i64);
                stages.push(stage);
            }
            continue;
        }
        // Elementwise ops and scalar broadcasts join the earliest group of their shape where
        // every operand they read is available; otherwise they open a new group at the end.
        let splat =
            matches!(d.op, Opcode::Expand | Opcode::BroadcastLike) && f.ty(d.args[0]).is_scalar();
        if vector_calls && vector_call(f, i, &homes) {
            homes.insert(d.result, Home::Buffer);
            avail.insert(d.result, stages.len() as i64);
            stages.push(Stage::Op(i));
            continue;
        }
        if d.op.is_elementwise() || splat {
            let fits = |gid: usize| {
                let pos = group_pos[gid] as i64;
                d.args.iter().enumerate().all(|(k, a)| {
                    !reads_value(d.op, k)
                        || homes.get(a) == Some(&Home::InGroup(gid))
                        || avail.get(a).is_some_and(|t| *t < pos)
                })
            };
            let found = (0..group_pos.len()).find(|&gid| {
                matches!(&stages[group_pos[gid]], Stage::Group(g) if g.shape == ty.shape)
                    && fits(gid)
            });
            let gid = match found {
                Some(gid) => gid,
                None => {
                    group_pos.push(stages.len());
                    stages.push(Stage::Group(Group {
                        shape: ty.shape.clone(),
                        ..Default::default()
                    }));
                    group_pos.len() - 1
                }
            };
            let Stage::Group(g) = &mut stages[group_pos[gid]] else {
                unreachable!("group positions hold groups")
            };
            g.insts.push(i);
            homes.insert(d.result, Home::InGroup(gid));
            avail.insert(d.result, group_pos[gid] as i64);
            continue;
        }
        if fusable_reduction(f, i)
            && let Some(Home::InGroup(gid)) = homes.get(&d.args[0]).cloned()
            && let Stage::Group(g) = &mut stages[group_pos[gid]]
            && g.shape == f.ty(d.args[0]).shape
        {
            g.reductions.push(i);
            homes.insert(d.result, Home::Reduced(gid));
            avail.insert(d.result, group_pos[gid] as i64);
            continue;
        }
        match d.op {
            Opcode::Expand | Opcode::BroadcastLike => {
                homes.insert(d.result, Home::View(d.args[0]));
                avail.insert(d.result, avail.get(&d.args[0]).copied().unwrap_or(-1));
            }
            // A reshape of a stored tensor is a view; to or from a scalar (a one-element
            // tensor) it is a standalone op that moves the one element.
            Opcode::Reshape
                if !matches!(homes.get(&d.args[0]), Some(Home::View(_)))
                    && !f.ty(d.args[0]).is_scalar()
                    && !ty.is_scalar() =>
            {
                homes.insert(d.result, Home::View(d.args[0]));
                avail.insert(d.result, avail.get(&d.args[0]).copied().unwrap_or(-1));
            }
            _ => {
                homes.insert(
                    d.result,
                    if ty.is_scalar() {
                        Home::Scalar
                    } else {
                        Home::Buffer
                    },
                );
                avail.insert(d.result, stages.len() as i64);
                stages.push(Stage::Op(i));
            }
        }
    }
    let mut all = prologue;
    all.extend(stages);
    let stages = all;

    // Which group values are read outside their group (or returned): those are stored.
    let mut stored = HashSet::new();
    let mut member_of: HashMap<Inst, usize> = HashMap::new();
    let mut gid = 0;
    for s in &stages {
        if let Stage::Group(g) = s {
            for &i in g.insts.iter().chain(&g.reductions) {
                member_of.insert(i, gid);
            }
            gid += 1;
        }
    }
    let need = |v: Value, user_group: Option<usize>, stored: &mut HashSet<Value>| {
        if let Some(Home::InGroup(g)) = homes.get(&v)
            && user_group != Some(*g)
        {
            stored.insert(v);
        }
    };
    for &i in &f.blocks[block].insts {
        let ug = member_of.get(&i).copied();
        for (k, &a) in f.insts[i].args.iter().enumerate() {
            if reads_value(f.insts[i].op, k) {
                need(a, ug, &mut stored);
            }
        }
    }
    for &r in returns {
        need(r, None, &mut stored);
    }
    Ok(Plan {
        stages,
        homes,
        stored,
        returns: returns.clone(),
    })
}

/// Whether the kernel of `f` may run on blocks of rows independently: the gradient and every
/// value it needs depend on y_pred and y_true row by row (elementwise ops, softmax and
/// reductions along the last axis, broadcasts of data-free scalars), and the loss is a sum or
/// mean over all elements of such a row-wise value. Each block then computes its rows of the
/// gradient exactly, and its share of the loss (means divide by the whole batch's count).
pub fn row_separable(f: &Function) -> bool {
    let block = f.entry();
    let Terminator::Return(rets) = &f.blocks[block].term else {
        return false;
    };
    let rank2 = |v: Value| f.ty(v).rank() == 2;
    let params = &f.blocks[block].params;
    if !params
        .iter()
        .all(|p| rank2(*p) && f.ty(*p).shape[0] == ncp_ir::Dim::B)
    {
        return false;
    }
    // row: depends on the inputs row by row (leading dim B); free: depends on no data.
    let mut row: HashSet<Value> = params.iter().copied().collect();
    let mut free: HashSet<Value> = HashSet::new();
    let mut loss_ok = false;
    for &i in &f.blocks[block].insts {
        let d = &f.insts[i];
        let ty = f.ty(d.result);
        let reads: Vec<Value> = d
            .args
            .iter()
            .enumerate()
            .filter(|(k, _)| reads_value(d.op, *k))
            .map(|(_, a)| *a)
            .collect();
        // A value computed from data-free operands is itself data-free, unless it combines
        // the rows of a batch-sized operand: a block would see only its own rows (a mean over
        // everything of a data-free `[B]` value, found by the jit_vs_interp fuzz target).
        // Counts use the whole batch's size, so they stay free.
        let elementwise = d.op.is_elementwise()
            || matches!(d.op, Opcode::Count | Opcode::Expand | Opcode::BroadcastLike);
        let spans_batch = d
            .args
            .iter()
            .any(|a| f.ty(*a).shape.contains(&ncp_ir::Dim::B));
        if reads.iter().all(|a| free.contains(a))
            && !matches!(d.op, Opcode::Softmax)
            && (elementwise || !spans_batch)
        {
            free.insert(d.result);
            continue;
        }
        let all_ok = reads.iter().all(|a| free.contains(a) || row.contains(a));
        let leading_b = ty.shape.first() == Some(&ncp_ir::Dim::B);
        let rowwise = match d.op.info().class {
            Class::Unary
            | Class::Binary
            | Class::Compare
            | Class::Select
            | Class::Cast
            | Class::Like => {
                // Operands without the batch dim must be data-free (they broadcast to every row).
                leading_b
                    && reads.iter().all(|a| {
                        free.contains(a) || f.ty(*a).shape.first() == Some(&ncp_ir::Dim::B)
                    })
            }
            Class::Reduce => {
                matches!(d.imm, Imm::Axis(Axis::Index(a)) if a as usize + 1 == f.ty(d.args[0]).rank() && a > 0)
            }
            _ => match d.op {
                Opcode::Softmax => f.ty(d.args[0]).rank() == 2,
                Opcode::Expand => matches!(d.imm, Imm::Axis(Axis::Index(a)) if a > 0),
                Opcode::MaxMask | Opcode::MinMask => {
                    matches!(d.imm, Imm::Axis(Axis::Index(a)) if a > 0)
                }
                _ => false,
            },
        };
        if all_ok && rowwise && leading_b {
            row.insert(d.result);
            continue;
        }
        // The only other thing allowed: the loss, a sum or mean over everything of a row value.
        let is_loss = rets.first() == Some(&d.result)
            && matches!(d.op, Opcode::Sum | Opcode::Mean)
            && (d.imm == Imm::Axis(Axis::All)
                || (d.imm == Imm::Axis(Axis::Index(0)) && f.ty(d.args[0]).rank() == 1))
            && row.contains(&d.args[0]);
        if is_loss {
            loss_ok = true;
            continue;
        }
        return false;
    }
    loss_ok && rets.get(1).is_none_or(|g| row.contains(g))
}
