//! AMM program -> IR by abstract interpretation over (pc, register types).
//!
//! This module is the driver: the lowering state, one block per (pc, register types) with the
//! instruction budget for programs that can loop, straight-line simulation, jumps and RETURN.
//! What each opcode does to the registers is in [`ops`].

use super::Program;
use super::opcodes as op;
use super::pyval::{PyInt, py_int, py_num};
use crate::formats::{FormatError, Mode, reduce_to_loss};
use ncp_ir::{
    Block, BlockCall, ConstVal, DType, Dim, DimModel, Function, Imm, Opcode, Terminator, TrapCode,
    Type, Value,
};
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap, HashSet};

mod flow;
mod loss_ops;
mod ops;

pub use ops::promote;

const NREG: usize = 20;
/// Most (pc, register types) states one program may compile to.
pub const MAX_BLOCKS: usize = 4096;

type TypeState = Vec<Option<Type>>;

/// Why an instruction did nothing (or less than it says): an interpreter exception it skips,
/// or a fallback. Compat mode records it; strict mode rejects the program with it.
struct Paper(String);

enum Flow {
    Next,
    Return(Option<Json>),
    Jump(Json),
    JumpIf(Json, Json),
    End,
}

struct Lowerer<'p> {
    prog: &'p [Json],
    mode: Mode,
    component: Component,
    /// The upstream weights of an activation component (see [`Component`]).
    other: Option<Value>,
    f: Function,
    specials: [Value; 7],
    targets: HashSet<usize>,
    budget: Option<i64>,
    blocks: HashMap<(usize, TypeState), Block>,
    work: Vec<(usize, TypeState, Block)>,
    notes: BTreeSet<(usize, String)>,
    trap_blocks: HashMap<TrapCode, Block>,
}

/// What an AMM program computes, which decides its special registers and what happens to its
/// result. Every variant is a function of the loss signature `(f32[B,C], f32[B,C]) -> f32`,
/// so the gradient pass, the interpreter and the JIT take them all.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Component {
    /// A loss (AMM's `loss` component): S0 = y_true (the second parameter), S1 = y_pred (the
    /// first); the result is averaged to a scalar.
    #[default]
    Loss,
    /// An activation's forward pass, as `(g, x) -> sum(g * act(x))`: S0 = x, S1 unset (0.0),
    /// S5/S6 ones and zeros of x's shape. Its gradient with respect to `g` is `act(x)`,
    /// broadcast to x's shape when it has one element (AMM's `expand_as`).
    ActivationForward,
    /// An activation's backward pass, as `(x, g) -> sum(act(x) * g)`: its gradient with
    /// respect to `x` is `act'(x) * g`.
    ActivationBackward,
}

/// The note an activation lowering leaves when the result is not float (AMM trains with it,
/// promoted by a dummy multiply, and fails when it reaches `Linear` in evaluation).
pub const ACTIVATION_NOT_FLOAT: &str = "the activation's result is not float";
/// The note an activation lowering leaves when the result has neither the input's shape nor
/// one element (AMM passes it on and the next layer fails).
pub const ACTIVATION_SHAPE: &str = "the activation's result has another shape than its input";

/// Compile an AMM loss program. Returns the function and, in compat mode, one note per thing
/// the interpreter would paper over (instruction index and reason).
pub fn lower(
    p: &Program,
    name: &str,
    mode: Mode,
    dims: DimModel,
) -> Result<(Function, Vec<String>), FormatError> {
    lower_as(p, name, mode, dims, Component::Loss)
}

/// Compile an AMM program as the given component.
pub fn lower_as(
    p: &Program,
    name: &str,
    mode: Mode,
    dims: DimModel,
    component: Component,
) -> Result<(Function, Vec<String>), FormatError> {
    let ity = dims.input_type();
    let (mut f, entry) = Function::new(name, &[ity.clone(), ity.clone()], vec![Type::f32()]);
    let p0 = f.blocks[entry].params[0];
    let p1 = f.blocks[entry].params[1];
    let ir = |r: Result<Value, ncp_ir::IrError>| r.map_err(FormatError::Ir);
    // (S0, S1, the other parameter: the upstream weights of an activation.)
    let (y_true, y_pred, other) = match component {
        Component::Loss => (p1, p0, None),
        Component::ActivationForward => {
            let zero = ir(f.ins(entry, Opcode::Const, Imm::Const(ConstVal::F32(0.0)), &[]))?;
            (p1, zero, Some(p0))
        }
        Component::ActivationBackward => {
            let zero = ir(f.ins(entry, Opcode::Const, Imm::Const(ConstVal::F32(0.0)), &[]))?;
            (p0, zero, Some(p1))
        }
    };
    let batch = ir(f.ins(entry, Opcode::Dim, Imm::Dim(Dim::B), &[]))?;
    let lr = ir(f.ins(entry, Opcode::Const, Imm::Const(ConstVal::F32(0.001)), &[]))?;
    let eps = ir(f.ins(entry, Opcode::Const, Imm::Const(ConstVal::F32(1e-7)), &[]))?;
    let ones = ir(f.ins(entry, Opcode::OnesLike, Imm::None, &[y_true]))?;
    let zeros = ir(f.ins(entry, Opcode::ZerosLike, Imm::None, &[y_true]))?;
    let batch = match dims {
        DimModel::Symbolic => batch,
        DimModel::Concrete { b, .. } => ir(f.ins(
            entry,
            Opcode::Const,
            Imm::Const(ConstVal::I64(b as i64)),
            &[],
        ))?,
    };
    let specials = [y_true, y_pred, batch, lr, eps, ones, zeros];

    let mut l = Lowerer {
        prog: &p.instrs,
        mode,
        component,
        other,
        f,
        specials,
        targets: HashSet::new(),
        budget: None,
        blocks: HashMap::new(),
        work: Vec::new(),
        notes: BTreeSet::new(),
        trap_blocks: HashMap::new(),
    };
    if p.instrs.is_empty() {
        l.strict_fail(0, "the program is empty")?;
        l.f.set_term(entry, Terminator::Trap(TrapCode::EmptyProgram));
        let notes = l.finish_notes();
        return Ok((l.f, notes));
    }
    // `load_program` compares every opcode with numbers before running anything.
    for (i, ins) in p.instrs.iter().enumerate() {
        if let Json::Array(a) = ins
            && let Some(o) = a.first()
            && py_num(o).is_none()
        {
            l.strict_fail(i, "the opcode is not a number")?;
            l.f.set_term(entry, Terminator::Trap(TrapCode::BadOpcode));
            let notes = l.finish_notes();
            return Ok((l.f, notes));
        }
    }
    l.scan_jumps();
    let regs0: TypeState = vec![None; NREG];
    if l.budget.is_some() || !l.targets.is_empty() {
        let args = match l.budget {
            Some(_) => vec![ir(l.f.ins(
                entry,
                Opcode::Const,
                Imm::Const(ConstVal::I64(0)),
                &[],
            ))?],
            None => Vec::new(),
        };
        let target = l.block_for(0, regs0)?;
        l.f.set_term(
            entry,
            Terminator::Jump(BlockCall {
                block: target,
                args,
            }),
        );
    } else {
        l.simulate(entry, 0, [None; NREG], None)?;
    }
    while let Some((pc, ts, guard)) = l.work.pop() {
        l.fill(pc, ts, guard)?;
    }
    let notes = l.finish_notes();
    Ok((l.f, notes))
}

fn op_code(ins: &Json) -> Option<f64> {
    match ins {
        Json::Array(a) => a.first().and_then(py_num),
        _ => None,
    }
}

impl Lowerer<'_> {
    fn ir(
        &mut self,
        b: Block,
        opc: Opcode,
        imm: Imm,
        args: &[Value],
    ) -> Result<Value, FormatError> {
        self.f.ins(b, opc, imm, args).map_err(FormatError::Ir)
    }

    fn finish_notes(&self) -> Vec<String> {
        self.notes
            .iter()
            .map(|(i, m)| format!("instruction {i}: {m}"))
            .collect()
    }

    fn strict_fail(&mut self, index: usize, msg: &str) -> Result<(), FormatError> {
        match self.mode {
            Mode::Strict => Err(FormatError::Amm {
                index,
                msg: msg.into(),
            }),
            Mode::Compat => {
                self.notes.insert((index, msg.into()));
                Ok(())
            }
        }
    }

    /// Lower instructions from `pc` into block `b` until the block ends; returns how many
    /// instructions it executes (for the budget).
    fn simulate(
        &mut self,
        b: Block,
        start: usize,
        mut regs: [Option<Value>; NREG],
        used: Option<Value>,
    ) -> Result<usize, FormatError> {
        let len = self.prog.len();
        let mut pc = start;
        let mut n = 0;
        loop {
            if pc >= len {
                self.strict_fail(
                    pc.min(len - 1),
                    "execution runs past the end without RETURN",
                )?;
                self.f.set_term(b, Terminator::Trap(TrapCode::NoReturn));
                return Ok(n);
            }
            if pc != start && self.targets.contains(&pc) {
                let call = self.call_to(pc, &regs, used)?;
                self.f.set_term(b, Terminator::Jump(call));
                return Ok(n);
            }
            n += 1;
            let flow = match self.step(b, pc, &mut regs)? {
                Ok(flow) => flow,
                Err(Paper(msg)) => {
                    self.strict_fail(pc, &msg)?;
                    Flow::Next
                }
            };
            match flow {
                Flow::Next => pc += 1,
                Flow::End => {
                    self.strict_fail(pc, "END stops execution without RETURN")?;
                    self.f.set_term(b, Terminator::Trap(TrapCode::NoReturn));
                    return Ok(n);
                }
                Flow::Return(None) => {
                    self.strict_fail(pc, "RETURN has no register operand; the interpreter raises")?;
                    self.f.set_term(b, Terminator::Trap(TrapCode::BadReturn));
                    return Ok(n);
                }
                Flow::Return(Some(reg)) => {
                    let term = self.ret(b, pc, &regs, &reg)?;
                    self.f.set_term(b, term);
                    return Ok(n);
                }
                Flow::Jump(addr) => match self.jump_target(pc, &addr)? {
                    None => pc += 1,
                    Some(Ok(t)) => {
                        let call = self.call_to(t, &regs, used)?;
                        self.f.set_term(b, Terminator::Jump(call));
                        return Ok(n);
                    }
                    Some(Err(())) => {
                        self.f
                            .set_term(b, Terminator::Trap(TrapCode::BadJumpTarget));
                        return Ok(n);
                    }
                },
                Flow::JumpIf(rcond, addr) => match self.jump_target(pc, &addr)? {
                    None => pc += 1,
                    Some(target) => {
                        let c = match self.reg(b, &regs, &rcond) {
                            Ok(c) => c,
                            Err(Paper(m)) => {
                                self.strict_fail(pc, &m)?;
                                pc += 1;
                                continue;
                            }
                        };
                        let cond = self.ir(b, Opcode::AnyNonzero, Imm::None, &[c])?;
                        let taken = match target {
                            Ok(t) => self.call_to(t, &regs, used)?,
                            Err(()) => BlockCall {
                                block: self.trap_block(TrapCode::BadJumpTarget),
                                args: vec![],
                            },
                        };
                        let fall = self.call_to(pc + 1, &regs, used)?;
                        self.f.set_term(b, Terminator::Brif(cond, taken, fall));
                        return Ok(n);
                    }
                },
            }
        }
    }

    /// `sum(g * act)` for an activation whose result is `v` (see [`Component`]).
    fn activation_result(
        &mut self,
        b: Block,
        pc: usize,
        v: Value,
    ) -> Result<Terminator, FormatError> {
        let (Some(g), x) = (self.other, self.specials[0]) else {
            return Err(FormatError::Ir(ncp_ir::IrError::Type(
                "an activation without its upstream weights".into(),
            )));
        };
        let ty = self.f.ty(v).clone();
        let one_element = ty.shape.iter().all(|d| *d == Dim::Fixed(1));
        if !one_element && ty.shape != self.f.ty(x).shape {
            self.notes.insert((pc, ACTIVATION_SHAPE.into()));
            return Ok(Terminator::Trap(TrapCode::BadReturn));
        }
        let mut v = v;
        if one_element && !ty.is_scalar() {
            v = self.ir(b, Opcode::Reshape, Imm::Shape(Vec::new()), &[v])?;
        }
        if ty.dtype != DType::F32 {
            self.notes.insert((pc, ACTIVATION_NOT_FLOAT.into()));
            v = self.ir(b, Opcode::Cast, Imm::DType(DType::F32), &[v])?;
        }
        let product = match self.component {
            Component::ActivationForward => self.ir(b, Opcode::Mul, Imm::None, &[g, v])?,
            _ => self.ir(b, Opcode::Mul, Imm::None, &[v, g])?,
        };
        let total = self.ir(b, Opcode::Sum, Imm::Axis(ncp_ir::Axis::All), &[product])?;
        Ok(Terminator::Return(vec![total]))
    }

    fn ret(
        &mut self,
        b: Block,
        pc: usize,
        regs: &[Option<Value>; NREG],
        reg: &Json,
    ) -> Result<Terminator, FormatError> {
        let v = match py_int(reg) {
            PyInt::Overflow => {
                self.strict_fail(pc, "RETURN's register is infinite")?;
                return Ok(Terminator::Trap(TrapCode::BadReturn));
            }
            PyInt::Invalid => {
                self.strict_fail(
                    pc,
                    "RETURN's register is not an integer; register 9 is returned",
                )?;
                regs[9]
            }
            PyInt::Ok(i) if (0..NREG as i64).contains(&i) => regs[i as usize],
            PyInt::Ok(_) => None,
        };
        let v = match v {
            Some(v) => v,
            None => {
                self.strict_fail(pc, "RETURN reads a register that was never written (0.0)")?;
                self.ir(b, Opcode::Const, Imm::Const(ConstVal::F32(0.0)), &[])?
            }
        };
        if self.component != Component::Loss {
            return self.activation_result(b, pc, v);
        }
        match reduce_to_loss(&mut self.f, b, v) {
            Ok(loss) => Ok(Terminator::Return(vec![loss])),
            Err(_) => {
                self.strict_fail(
                    pc,
                    "the result is an integer or bool tensor; averaging it fails",
                )?;
                Ok(Terminator::Trap(TrapCode::NonFloatResult))
            }
        }
    }

    /// Execute one instruction's effect on the registers.
    fn step(
        &mut self,
        b: Block,
        pc: usize,
        regs: &mut [Option<Value>; NREG],
    ) -> Result<Result<Flow, Paper>, FormatError> {
        let ins = &self.prog[pc];
        let Json::Array(items) = ins else {
            return Ok(Err(Paper("the instruction is not a list; skipped".into())));
        };
        let Some(first) = items.first() else {
            return Ok(Err(Paper("the instruction is empty; skipped".into())));
        };
        let Some(o) = py_num(first) else {
            return Ok(Err(Paper("the opcode is not a number".into())));
        };
        let params = &items[1..];
        if o == op::RETURN as f64 {
            return Ok(Ok(Flow::Return(params.first().cloned())));
        }
        if o.fract() != 0.0 && self.mode == Mode::Strict {
            return Ok(Err(Paper(format!("the opcode {o} is not an integer"))));
        }
        let r = if (0.0..100.0).contains(&o) {
            self.arith(b, o, params, regs)?
        } else if (100.0..200.0).contains(&o) {
            self.tensor_op(b, o, params, regs)?
        } else if (200.0..250.0).contains(&o) {
            self.reduction(b, pc, o, params, regs)?
        } else if (250.0..350.0).contains(&o) {
            self.nn(b, pc, o, params, regs)?
        } else if (350.0..400.0).contains(&o) {
            self.loss_op(b, pc, o, params, regs)?
        } else if (400.0..450.0).contains(&o) {
            self.logical(b, o, params, regs)?
        } else if (450.0..500.0).contains(&o) {
            return Ok(self.control(o, params));
        } else {
            Err(Paper(format!("unknown opcode {o}; skipped")))
        };
        Ok(r.map(|()| Flow::Next))
    }

    fn control(&self, o: f64, params: &[Json]) -> Result<Flow, Paper> {
        if o == op::JUMP as f64 {
            match params.first() {
                Some(a) => Ok(Flow::Jump(a.clone())),
                None => Err(Paper("JUMP without a target is ignored".into())),
            }
        } else if o == op::JUMP_IF as f64 {
            match params {
                [c, a, ..] => Ok(Flow::JumpIf(c.clone(), a.clone())),
                _ => Err(Paper(
                    "JUMP_IF without condition and target is ignored".into(),
                )),
            }
        } else if o == op::END as f64 {
            Ok(Flow::End)
        } else {
            Err(Paper(format!("unknown control opcode {o}; skipped")))
        }
    }

    /// `_get_register_value`.
    fn read(&mut self, b: Block, reg: &Json) -> Result<Value, Paper> {
        match py_int(reg) {
            PyInt::Overflow => Err(Paper(
                "a register id is infinite; the instruction fails".into(),
            )),
            PyInt::Invalid => self.zero(b, "a register id is not an integer; it reads 0.0"),
            PyInt::Ok(i) if (0..NREG as i64).contains(&i) => Err(Paper(format!(
                "register {i} is read (checked by the caller)"
            ))),
            PyInt::Ok(i) if (100..107).contains(&i) => Ok(self.specials[(i - 100) as usize]),
            PyInt::Ok(i) => self.zero(b, &format!("register {i} does not exist; it reads 0.0")),
        }
    }

    fn zero(&mut self, b: Block, why: &str) -> Result<Value, Paper> {
        if self.mode == Mode::Strict {
            return Err(Paper(why.into()));
        }
        self.f
            .ins(b, Opcode::Const, Imm::Const(ConstVal::F32(0.0)), &[])
            .map_err(|e| Paper(e.to_string()))
    }

    fn reg(&mut self, b: Block, regs: &[Option<Value>; NREG], reg: &Json) -> Result<Value, Paper> {
        if let PyInt::Ok(i) = py_int(reg)
            && (0..NREG as i64).contains(&i)
        {
            return match regs[i as usize] {
                Some(v) => Ok(v),
                None => self.zero(
                    b,
                    &format!("register {i} is read before it is written; it reads 0.0"),
                ),
            };
        }
        self.read(b, reg)
    }

    /// `_set_register_value`.
    fn write(
        &mut self,
        regs: &mut [Option<Value>; NREG],
        reg: &Json,
        v: Value,
    ) -> Result<(), Paper> {
        match py_int(reg) {
            PyInt::Ok(i) if (0..NREG as i64).contains(&i) => {
                regs[i as usize] = Some(v);
                Ok(())
            }
            PyInt::Overflow => Err(Paper(
                "the destination register is infinite; the instruction fails".into(),
            )),
            _ if self.mode == Mode::Strict => Err(Paper(
                "the destination is not a general register (0..19); the write is ignored".into(),
            )),
            _ => Ok(()),
        }
    }

    fn ty(&self, v: Value) -> Type {
        self.f.ty(v).clone()
    }

    fn cast(&mut self, b: Block, v: Value, d: DType) -> Result<Value, FormatError> {
        if self.f.ty(v).dtype == d {
            Ok(v)
        } else {
            self.ir(b, Opcode::Cast, Imm::DType(d), &[v])
        }
    }

    fn konst(&mut self, b: Block, c: ConstVal) -> Result<Value, FormatError> {
        self.ir(b, Opcode::Const, Imm::Const(c), &[])
    }
}
