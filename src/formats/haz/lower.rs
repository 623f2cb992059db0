//! Compiling a gene: run `EvolvedLoss.forward` symbolically, one instruction at a time.
//!
//! Slot contents are tracked with their torch shapes, so every shape error torch would raise
//! is found at compile time. Since every instruction runs and nothing catches exceptions
//! (except ops 46/78 and 48/80), the first one that raises decides the outcome: the whole
//! evaluation faults.

use super::ops::{DIMS_PLACE, Emit, R, Stop, Tv, show};
use super::table::{Kind, OpInfo, Rand, op_info, uses_inputs};
use super::{AddrRef, ConstRef, Gene, OpRef};
use crate::formats::{FormatError, Mode};
use ncp_ir::{Axis, Dim, DimModel, Function, Imm, Opcode, Terminator, TrapCode, Type};

/// Whether `e` is an error that compiling for concrete dims (`DimModel::Concrete`) avoids:
/// a slot size meets `B` or `C`, so the outcome depends on their values.
pub fn requires_concrete_dims(e: &FormatError) -> bool {
    matches!(e, FormatError::Haz { place, .. } if place == DIMS_PLACE)
}

const RANDOM: &str = "the op draws from torch's global RNG, whose state depends on everything the trainer did before; ncpc cannot reproduce its values";

/// What a slot holds.
#[derive(Clone, Debug)]
enum Slot {
    /// A tensor.
    T(Tv),
    /// `None`, stored by op 0 at this instruction.
    Poison(usize),
}

struct Lowerer<'g> {
    g: &'g Gene,
    mode: Mode,
    e: Emit,
    slots: Vec<Slot>,
    /// Which instruction last wrote each slot.
    writer: Vec<Option<usize>>,
    notes: Vec<String>,
    /// The first op whose value ncpc cannot compute (a random draw, an unrepresentable
    /// shape), and why. It only matters if nothing faults later.
    deferred: Option<(usize, String)>,
}

/// Compile a gene to a loss function `(y_pred, y_true) -> f32` for `dims`. Returns the
/// function and, in compat mode, one note per thing the reference papers over (faults
/// included: a gene that always faults compiles to a `trap haz_fault`). In strict mode those
/// are errors naming the instruction.
pub fn lower(
    g: &Gene,
    name: &str,
    mode: Mode,
    dims: DimModel,
) -> Result<(Function, Vec<String>), FormatError> {
    let ity = dims.input_type();
    let (f, b) = Function::new(name, &[ity.clone(), ity.clone()], vec![Type::f32()]);
    let pred = f.blocks[b].params[0];
    let truth = f.blocks[b].params[1];
    let m = &g.memory;
    for (field, s) in [
        ("memory.scalar_size", &m.scalar_shape),
        ("memory.vector_size", &m.vector_shape),
        ("memory.tensor_size", &m.tensor_shape),
    ] {
        if s.contains(&0) {
            return Err(FormatError::Haz {
                place: field.into(),
                msg: "a size of 0 makes empty tensors, which ncpc does not model".into(),
            });
        }
    }
    let mut e = Emit {
        f,
        b,
        pred,
        unsupported: None,
    };
    let zero = e.c(0.0).map_err(internal)?;
    let slots = (0..m.len())
        .map(|i| {
            Slot::T(Tv {
                v: zero,
                shape: m.shape_of(i).iter().map(|d| Dim::Fixed(*d)).collect(),
                rg: false,
                dp: false,
            })
        })
        .collect();
    let mut l = Lowerer {
        g,
        mode,
        e,
        slots,
        writer: vec![None; m.len()],
        notes: Vec::new(),
        deferred: None,
    };
    let input_shape = ity.shape.clone();
    // `memory[0] = outputs; memory[1] = targets` (both leaves that require grad).
    for (addr, v, dp) in [(0, pred, true), (1, truth, false)] {
        let slot = Slot::T(Tv {
            v,
            shape: input_shape.clone(),
            rg: true,
            dp,
        });
        match m.resolve(&AddrRef::Index(addr)) {
            Ok(i) => l.slots[i] = slot,
            Err(msg) => return l.finish_fault("the inputs", &msg),
        }
    }
    for i in 0..g.ops.len() {
        match l.step(i) {
            Ok(()) => {}
            Err(Stop::Fault(msg)) => {
                let place = l.place(i);
                return l.finish_fault(&place, &msg);
            }
            Err(Stop::Err(err)) => return Err(err),
        }
    }
    l.finish()
}

impl Lowerer<'_> {
    fn place(&self, i: usize) -> String {
        match self.g.ops.get(i) {
            Some(OpRef::Id(id)) => match op_info(*id) {
                Some(o) => format!("instruction {i} (op {id} {})", o.name),
                None => format!("instruction {i} (op {id})"),
            },
            Some(OpRef::Unknown(d)) => format!("instruction {i} (op {d})"),
            None => format!("instruction {i}"),
        }
    }

    /// The gene always faults: a trap in compat mode, an error in strict mode.
    fn finish_fault(
        mut self,
        place: &str,
        msg: &str,
    ) -> Result<(Function, Vec<String>), FormatError> {
        if self.mode == Mode::Strict {
            return Err(FormatError::Haz {
                place: place.into(),
                msg: format!("{msg}; the reference raises here, so every evaluation fails"),
            });
        }
        self.notes
            .push(format!("{place}: {msg}; every evaluation faults"));
        let b = self.e.b;
        self.e.f.blocks[b].insts.clear();
        self.e.f.set_term(b, Terminator::Trap(TrapCode::HazFault));
        Ok((self.e.f, self.notes))
    }

    /// Compat papers over something that does not fault; strict rejects it.
    fn paper(&mut self, i: usize, msg: String) -> R<()> {
        if self.mode == Mode::Strict {
            return Err(Stop::Err(FormatError::Haz {
                place: self.place(i),
                msg,
            }));
        }
        self.notes.push(format!("{}: {msg}", self.place(i)));
        Ok(())
    }

    fn read(&self, i: usize, arr: &[AddrRef], field: &str) -> R<Slot> {
        let Some(a) = arr.get(i) else {
            return Err(Stop::Fault(format!(
                "`{field}` has only {} entries (IndexError)",
                arr.len()
            )));
        };
        let at = self
            .g
            .memory
            .resolve(a)
            .map_err(|m| Stop::Fault(format!("`{field}`: {m}")))?;
        Ok(self.slots[at].clone())
    }

    fn constant(&self, i: usize, arr: &[ConstRef], field: &str) -> R<f32> {
        match arr.get(i) {
            None => Err(Stop::Fault(format!(
                "`{field}` has only {} entries (IndexError)",
                arr.len()
            ))),
            Some(ConstRef::F32(x)) => Ok(*x),
            Some(ConstRef::Fault(d)) => Err(Stop::Fault(format!(
                "`{field}` holds {d}; torch.tensor(..., requires_grad=True) raises"
            ))),
            Some(ConstRef::Unsupported(d)) => Err(Stop::Err(FormatError::Haz {
                place: self.place(i),
                msg: format!("`{field}` holds the list {d}; ncpc does not model tensor constants"),
            })),
        }
    }

    fn tensor(&self, s: Slot, which: &str) -> R<Tv> {
        match s {
            Slot::T(t) => Ok(t),
            Slot::Poison(j) => Err(Stop::Fault(format!(
                "{which} holds None (stored by op 0 at instruction {j})"
            ))),
        }
    }

    fn step(&mut self, i: usize) -> R<()> {
        let info = match &self.g.ops[i] {
            OpRef::Id(id) => op_info(*id),
            OpRef::Unknown(_) => None,
        };
        let Some(info) = info else {
            return Err(Stop::Fault(
                "the op id is not in the decoding map (KeyError)".into(),
            ));
        };
        let a = self.read(i, &self.g.in1, "input_gene")?;
        let b = self.read(i, &self.g.in2, "input_gene_2")?;
        let k1 = self.constant(i, &self.g.k1, "constants_gene")?;
        let k2 = self.constant(i, &self.g.k2, "constants_gene_2")?;
        let result = self.apply(i, info, a, b, k1, k2)?;
        if let Some(msg) = self.e.unsupported.take() {
            self.deferred.get_or_insert((i, msg));
        }
        let Some(o) = self.g.out.get(i) else {
            return Err(Stop::Fault(format!(
                "`output_gene` has only {} entries (IndexError)",
                self.g.out.len()
            )));
        };
        let at = self
            .g
            .memory
            .resolve(o)
            .map_err(|m| Stop::Fault(format!("`output_gene`: {m}")))?;
        self.slots[at] = result;
        self.writer[at] = Some(i);
        Ok(())
    }

    fn apply(&mut self, i: usize, info: OpInfo, a: Slot, b: Slot, k1: f32, k2: f32) -> R<Slot> {
        let (use_a, use_b) = uses_inputs(info.kind);
        // 46/78 and 48/80 catch every exception and return input 1 unchanged.
        if matches!(info.kind, Kind::SoftmaxAll | Kind::Std0)
            && let Slot::Poison(j) = a
        {
            self.paper(
                i,
                format!("input 1 holds None (op 0 at instruction {j}); the op's try/except returns it unchanged"),
            )?;
            return Ok(Slot::Poison(j));
        }
        let ta = if use_a {
            Some(self.tensor(a, "input 1")?)
        } else {
            None
        };
        let tb = if use_b {
            Some(self.tensor(b, "input 2")?)
        } else {
            None
        };
        let e = &mut self.e;
        let t = match (info.kind, ta, tb) {
            (Kind::Nop, _, _) => return Ok(Slot::Poison(i)),
            (Kind::Bin(op), Some(x), Some(y)) => e.binary(op, &x, &y)?,
            (Kind::Un(u), Some(x), _) => e.unary(u, &x)?,
            (Kind::SetConst, _, _) => Tv {
                v: e.c(k1)?,
                shape: Vec::new(),
                rg: false,
                dp: false,
            },
            (Kind::Random(r), x, _) => {
                let shape = random_shape(r, x.as_ref(), k1, k2)?;
                self.deferred.get_or_insert((i, RANDOM.into()));
                let v = self.e.c(0.0)?;
                return Ok(Slot::T(Tv {
                    v,
                    shape,
                    rg: false,
                    dp: false,
                }));
            }
            (Kind::SoftmaxAll, Some(x), _) => e.softmax_all(&x)?,
            (Kind::MeanAll, Some(x), _) => e.reduce_all(Opcode::Mean, &x)?,
            (Kind::Std0, Some(x), _) => e.std0(&x)?,
            (Kind::MaxAll, Some(x), _) => e.reduce_all(Opcode::RMax, &x)?,
            (Kind::MinAll, Some(x), _) => e.reduce_all(Opcode::RMin, &x)?,
            (Kind::Dot, Some(x), Some(y)) => e.dot(&x, &y)?,
            (Kind::Norm, _, _) => {
                return Err(Stop::Fault(
                    "torch.norm with a tensor order raises TypeError on torch 2.x".into(),
                ));
            }
            (Kind::Fill, Some(x), Some(y)) => e.fill(&x, dim_at(&y, 0)?)?,
            (Kind::RepeatRows, Some(x), Some(y)) => e.repeat(&x, dim_at(&y, 0)?)?,
            (Kind::RepeatCols, Some(x), Some(y)) => {
                let r = e.repeat(&x, dim_at(&y, 1)?)?;
                e.transpose(&r)?
            }
            (Kind::Outer, Some(x), Some(y)) => e.outer(&x, &y)?,
            (Kind::Matmul, Some(x), Some(y)) => e.matmul(&x, &y)?,
            (Kind::Transpose, Some(x), _) => e.transpose(&x)?,
            _ => {
                return Err(Stop::Err(FormatError::Haz {
                    place: self.place(i),
                    msg: "internal error: operands missing".into(),
                }));
            }
        };
        Ok(Slot::T(t))
    }

    /// The loss: slot 0, averaged when it has more than one element.
    fn finish(mut self) -> Result<(Function, Vec<String>), FormatError> {
        let r = self.slots[0].clone();
        let last = match self.writer[0] {
            Some(j) => format!("last written by {}", self.place(j)),
            None => "never written".into(),
        };
        let t = match r {
            Slot::T(t) => t,
            Slot::Poison(j) => {
                let msg = format!(
                    "slot 0 (the loss) holds None, stored by op 0 at instruction {j} (AttributeError)"
                );
                return self.finish_fault("the result", &msg);
            }
        };
        if !t.rg {
            let msg = format!(
                "slot 0 (the loss, {last}) does not require grad, so loss.backward() raises"
            );
            return self.finish_fault("the result", &msg);
        }
        // Nothing faults, so the value of a random or unrepresentable op may reach the loss.
        if let Some((j, msg)) = self.deferred.take() {
            return Err(FormatError::Haz {
                place: self.place(j),
                msg,
            });
        }
        let loss = match self.loss(&t) {
            Ok(v) => v,
            Err(Stop::Err(err)) => return Err(err),
            Err(Stop::Fault(msg)) => return self.finish_fault("the result", &msg),
        };
        let b = self.e.b;
        self.e.f.set_term(b, Terminator::Return(vec![loss]));
        ncp_ir::verify::verify(&self.e.f)?;
        let notes = if self.mode == Mode::Strict {
            Vec::new()
        } else {
            self.notes
        };
        Ok((self.e.f, notes))
    }

    fn loss(&mut self, t: &Tv) -> R<ncp_ir::Value> {
        if t.shape.iter().all(|d| *d == Dim::Fixed(1)) {
            self.e.reshape(t.v, Vec::new())
        } else {
            self.e.ins(Opcode::Mean, Imm::Axis(Axis::All), &[t.v])
        }
    }
}

fn internal(s: Stop) -> FormatError {
    match s {
        Stop::Err(e) => e,
        Stop::Fault(msg) => FormatError::Haz {
            place: "internal".into(),
            msg,
        },
    }
}

/// Size `k` of a tensor's shape (`b.shape[k]`), a fault when it has fewer dims.
fn dim_at(t: &Tv, k: usize) -> R<Dim> {
    t.shape.get(k).copied().ok_or_else(|| {
        Stop::Fault(format!(
            "shape[{k}] of a tensor of shape {} (IndexError)",
            show(&t.shape)
        ))
    })
}

/// The checks a random op makes before drawing, and the shape of what it draws.
fn random_shape(r: Rand, a: Option<&Tv>, k1: f32, k2: f32) -> R<Vec<Dim>> {
    let rank2 = |a: Option<&Tv>| -> R<Vec<Dim>> {
        match a {
            Some(t) if t.shape.len() == 2 => Ok(t.shape.clone()),
            Some(t) => Err(Stop::Fault(format!(
                "`rows, cols = a.shape` with a shape of {} dims (ValueError)",
                t.shape.len()
            ))),
            None => Err(Stop::Fault("input 1 is missing".into())),
        }
    };
    let normal = |shape: Vec<Dim>| -> R<Vec<Dim>> {
        if k2 >= 0.0 {
            Ok(shape)
        } else {
            Err(Stop::Fault(format!(
                "normal_ with std {k2} (needs std >= 0)"
            )))
        }
    };
    let uniform = |shape: Vec<Dim>| -> R<Vec<Dim>> {
        if k1 > k2 {
            Err(Stop::Fault(format!(
                "uniform_ from {k1} to {k2} (needs from <= to)"
            )))
        } else {
            Ok(shape)
        }
    };
    match r {
        Rand::GaussScalar => normal(vec![Dim::Fixed(1)]),
        Rand::GaussMatrix => normal(rank2(a)?),
        Rand::UniformMatrix => uniform(rank2(a)?),
        Rand::UniformLike => uniform(a.map(|t| t.shape.clone()).unwrap_or_default()),
        Rand::GaussVector => match a {
            Some(t) if t.shape.len() >= 2 => normal(vec![t.shape[1]]),
            Some(t) => Err(Stop::Fault(format!(
                "shape[1] of a tensor of shape {} (IndexError)",
                show(&t.shape)
            ))),
            None => Err(Stop::Fault("input 1 is missing".into())),
        },
    }
}
