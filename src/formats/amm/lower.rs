//! AMM program -> IR by abstract interpretation over (pc, register types).

use super::Program;
use super::opcodes as op;
use super::pyval::{PyInt, dict_key, is_float, param, py_int, py_num};
use crate::formats::{FormatError, Mode, reduce_to_loss};
use ncp_ir::types::broadcast;
use ncp_ir::{
    Axis, Block, BlockCall, ConstVal, DType, Dim, DimModel, Function, Imm, Opcode, Terminator,
    TrapCode, Type, Value,
};
use serde_json::{Value as Json, json};
use std::collections::{BTreeSet, HashMap, HashSet};

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
    f: Function,
    specials: [Value; 7],
    targets: HashSet<usize>,
    budget: Option<i64>,
    blocks: HashMap<(usize, TypeState), Block>,
    work: Vec<(usize, TypeState, Block)>,
    notes: BTreeSet<(usize, String)>,
    trap_blocks: HashMap<TrapCode, Block>,
}

/// Compile an AMM program. Returns the function and, in compat mode, one note per thing the
/// interpreter would paper over (instruction index and reason).
pub fn lower(
    p: &Program,
    name: &str,
    mode: Mode,
    dims: DimModel,
) -> Result<(Function, Vec<String>), FormatError> {
    let ity = dims.input_type();
    let (mut f, entry) = Function::new(name, &[ity.clone(), ity.clone()], vec![Type::f32()]);
    let y_pred = f.blocks[entry].params[0];
    let y_true = f.blocks[entry].params[1];
    let ir = |r: Result<Value, ncp_ir::IrError>| r.map_err(FormatError::Ir);
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

    /// Find jump targets that are taken as integers, and whether any jump goes backwards (the
    /// only way to loop, and so to need the budget counter).
    fn scan_jumps(&mut self) {
        let len = self.prog.len();
        for (pc, ins) in self.prog.iter().enumerate() {
            let Json::Array(a) = ins else { continue };
            let Some(o) = op_code(ins) else { continue };
            let addr = if o == op::JUMP as f64 && a.len() >= 2 {
                &a[1]
            } else if o == op::JUMP_IF as f64 && a.len() >= 3 {
                &a[2]
            } else {
                continue;
            };
            let Some(t) = py_num(addr) else { continue };
            if !(t >= 0.0 && t < len as f64) || is_float(addr) {
                continue;
            }
            let t = t as usize;
            self.targets.insert(t);
            if o == op::JUMP_IF as f64 {
                self.targets.insert(pc + 1);
            }
            if t <= pc {
                self.budget = Some(1000i64.max(10 * len as i64));
            }
        }
    }

    /// The block that starts executing `pc` with registers of types `ts` (its guard block
    /// when the budget is tracked). Created on first request.
    fn block_for(&mut self, pc: usize, ts: TypeState) -> Result<Block, FormatError> {
        if let Some(b) = self.blocks.get(&(pc, ts.clone())) {
            return Ok(*b);
        }
        if self.blocks.len() >= MAX_BLOCKS {
            return Err(FormatError::AmmProgram(format!(
                "more than {MAX_BLOCKS} distinct (instruction, register type) states; the program's loops change register shapes too often to compile"
            )));
        }
        let b = self.f.add_block();
        for t in ts.iter().flatten() {
            self.f.add_block_param(b, t.clone());
        }
        if self.budget.is_some() {
            self.f.add_block_param(b, Type::scalar(DType::I64));
        }
        self.blocks.insert((pc, ts.clone()), b);
        self.work.push((pc, ts, b));
        Ok(b)
    }

    fn trap_block(&mut self, t: TrapCode) -> Block {
        if let Some(b) = self.trap_blocks.get(&t) {
            return *b;
        }
        let b = self.f.add_block();
        self.f.set_term(b, Terminator::Trap(t));
        self.trap_blocks.insert(t, b);
        b
    }

    /// Build the block for (pc, ts): with the budget, `guard` checks the count and jumps to a
    /// body block; without, `guard` is the body.
    fn fill(&mut self, pc: usize, ts: TypeState, guard: Block) -> Result<(), FormatError> {
        let params = self.f.blocks[guard].params.clone();
        let mut regs: [Option<Value>; NREG] = [None; NREG];
        let mut k = 0;
        for (r, t) in ts.iter().enumerate() {
            if t.is_some() {
                regs[r] = Some(params[k]);
                k += 1;
            }
        }
        let Some(budget) = self.budget else {
            return self.simulate(guard, pc, regs, None).map(|_| ());
        };
        let used = params[k];
        let body = self.f.add_block();
        let mut body_regs = [None; NREG];
        for (r, v) in regs.iter().enumerate() {
            if let Some(v) = v {
                body_regs[r] = Some(self.f.add_block_param(body, self.f.ty(*v).clone()));
            }
        }
        let body_used = self.f.add_block_param(body, Type::scalar(DType::I64));
        let n = self.simulate(body, pc, body_regs, Some(body_used))?;
        let kc = self.ir(
            guard,
            Opcode::Const,
            Imm::Const(ConstVal::I64(n as i64)),
            &[],
        )?;
        let after = self.ir(guard, Opcode::Add, Imm::None, &[used, kc])?;
        let bc = self.ir(guard, Opcode::Const, Imm::Const(ConstVal::I64(budget)), &[])?;
        let over = self.ir(guard, Opcode::Gt, Imm::None, &[after, bc])?;
        let trap = self.trap_block(TrapCode::BudgetExhausted);
        let mut args: Vec<Value> = regs.iter().flatten().copied().collect();
        args.push(after);
        self.f.set_term(
            guard,
            Terminator::Brif(
                over,
                BlockCall {
                    block: trap,
                    args: vec![],
                },
                BlockCall { block: body, args },
            ),
        );
        Ok(())
    }

    fn ts_of(&self, regs: &[Option<Value>; NREG]) -> TypeState {
        regs.iter()
            .map(|r| r.map(|v| self.f.ty(v).clone()))
            .collect()
    }

    fn call_to(
        &mut self,
        pc: usize,
        regs: &[Option<Value>; NREG],
        used: Option<Value>,
    ) -> Result<BlockCall, FormatError> {
        let block = self.block_for(pc, self.ts_of(regs))?;
        let mut args: Vec<Value> = regs.iter().flatten().copied().collect();
        args.extend(used);
        Ok(BlockCall { block, args })
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

    /// `None`: the jump is ignored; `Some(Ok(t))`: jump to t; `Some(Err)`: the jump stores a
    /// float address and the next fetch faults.
    fn jump_target(
        &mut self,
        pc: usize,
        addr: &Json,
    ) -> Result<Option<Result<usize, ()>>, FormatError> {
        let len = self.prog.len();
        match py_num(addr) {
            Some(t) if t >= 0.0 && t < len as f64 => {
                if is_float(addr) {
                    self.strict_fail(pc, "the jump target is a float; taking the jump faults")?;
                    Ok(Some(Err(())))
                } else {
                    Ok(Some(Ok(t as usize)))
                }
            }
            Some(_) => {
                self.strict_fail(pc, "the jump target is out of range; the jump is ignored")?;
                Ok(None)
            }
            None => {
                self.strict_fail(pc, "the jump target is not a number; the instruction fails")?;
                Ok(None)
            }
        }
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
            self.logical(b, pc, o, params, regs)?
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

    /// A binary elementwise op with PyTorch's type promotion. `Ok(None)`: torch raises.
    fn binary(
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

    fn arith(
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

    fn tensor_op(
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

    fn reduction(
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
        let code = if o.fract() == 0.0 { o as i64 } else { -1 };
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

    fn nn(
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
        let code = if o.fract() == 0.0 { o as i64 } else { -1 };
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

    fn loss_op(
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
        let code = if o.fract() == 0.0 { o as i64 } else { -1 };
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

    fn mean_all(&mut self, b: Block, v: Value) -> Result<Option<Value>, FormatError> {
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

    fn mse_mae(
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

    fn bce(&mut self, b: Block, yt: Value, yp: Value) -> Result<Option<Value>, FormatError> {
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

    fn logical(
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
        let code = if o.fract() == 0.0 { o as i64 } else { -1 };
        let _ = pc;
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
