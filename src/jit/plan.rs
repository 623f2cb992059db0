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

fn is_elementwise(op: Opcode) -> bool {
    matches!(
        op.info().class,
        Class::Unary | Class::Binary | Class::Compare | Class::Select | Class::Cast | Class::Like
    )
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
    for &p in &f.blocks[block].params {
        homes.insert(p, Home::Buffer);
    }
    let mut stages: Vec<Stage> = Vec::new();
    let mut open: Option<(usize, Group)> = None;
    let mut n_groups = 0;
    let close = |open: &mut Option<(usize, Group)>, stages: &mut Vec<Stage>| {
        if let Some((_, g)) = open.take() {
            stages.push(Stage::Group(g));
        }
    };
    for &i in &f.blocks[block].insts {
        let d = &f.insts[i];
        let ty = f.ty(d.result);
        if ty.rank() > 2 || d.args.iter().any(|a| f.ty(*a).rank() > 2) {
            return Err(Unsupported("a value of rank above 2".into()));
        }
        if ty.dtype == DType::I64 && !ty.is_scalar() {
            return Err(Unsupported("a non-scalar integer tensor".into()));
        }
        let open_id = open.as_ref().map(|(id, _)| *id);
        let reads_pending = d.args.iter().any(|a| {
            open_id.is_some() && homes.get(a) == Some(&Home::Reduced(open_id.unwrap_or(usize::MAX)))
        });
        let class = d.op.info().class;
        let scalar_view = matches!(d.op, Opcode::Expand | Opcode::BroadcastLike) && ty.is_scalar();
        if class == Class::Leaf || (is_elementwise(d.op) && ty.is_scalar()) || scalar_view {
            if reads_pending {
                close(&mut open, &mut stages);
            }
            stages.push(Stage::Scalar(i));
            homes.insert(d.result, Home::Scalar);
            continue;
        }
        if is_elementwise(d.op) {
            let fits = matches!(&open, Some((_, g)) if g.shape == ty.shape) && !reads_pending;
            if !fits {
                close(&mut open, &mut stages);
                open = Some((
                    n_groups,
                    Group {
                        shape: ty.shape.clone(),
                        ..Default::default()
                    },
                ));
                n_groups += 1;
            }
            let (id, g) = open.as_mut().expect("group just opened");
            g.insts.push(i);
            homes.insert(d.result, Home::InGroup(*id));
            continue;
        }
        if fusable_reduction(f, i)
            && let Some((id, g)) = open.as_mut()
            && homes.get(&d.args[0]) == Some(&Home::InGroup(*id))
            && g.shape == f.ty(d.args[0]).shape
        {
            g.reductions.push(i);
            homes.insert(d.result, Home::Reduced(*id));
            continue;
        }
        match d.op {
            Opcode::Expand | Opcode::BroadcastLike => {
                let src = d.args[0];
                if f.ty(src).is_scalar() {
                    // A scalar broadcast is just the scalar inside a loop: an elementwise copy.
                    let fits =
                        matches!(&open, Some((_, g)) if g.shape == ty.shape) && !reads_pending;
                    if !fits {
                        close(&mut open, &mut stages);
                        open = Some((
                            n_groups,
                            Group {
                                shape: ty.shape.clone(),
                                ..Default::default()
                            },
                        ));
                        n_groups += 1;
                    }
                    let (id, g) = open.as_mut().expect("group just opened");
                    g.insts.push(i);
                    homes.insert(d.result, Home::InGroup(*id));
                } else {
                    if matches!(homes.get(&src), Some(Home::InGroup(_) | Home::Reduced(_)))
                        && open_id.is_some()
                    {
                        close(&mut open, &mut stages);
                    }
                    homes.insert(d.result, Home::View(src));
                }
            }
            Opcode::Reshape if !matches!(homes.get(&d.args[0]), Some(Home::View(_))) => {
                if matches!(
                    homes.get(&d.args[0]),
                    Some(Home::InGroup(_) | Home::Reduced(_))
                ) {
                    close(&mut open, &mut stages);
                }
                if f.ty(d.args[0]).is_scalar() || ty.is_scalar() {
                    return Err(Unsupported("reshape to or from a scalar".into()));
                }
                homes.insert(d.result, Home::View(d.args[0]));
            }
            _ => {
                close(&mut open, &mut stages);
                stages.push(Stage::Op(i));
                homes.insert(
                    d.result,
                    if ty.is_scalar() {
                        Home::Scalar
                    } else {
                        Home::Buffer
                    },
                );
            }
        }
    }
    close(&mut open, &mut stages);

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
