//! Control flow: jump targets, one IR block per (instruction, register types) reached, and
//! the interpreter's instruction budget carried as a block parameter.

use super::super::pyval::is_float;
use super::*;

impl Lowerer<'_> {
    /// Find jump targets that are taken as integers, and whether any jump goes backwards (the
    /// only way to loop, and so to need the budget counter).
    pub(super) fn scan_jumps(&mut self) {
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
    pub(super) fn block_for(&mut self, pc: usize, ts: TypeState) -> Result<Block, FormatError> {
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

    pub(super) fn trap_block(&mut self, t: TrapCode) -> Block {
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
    pub(super) fn fill(
        &mut self,
        pc: usize,
        ts: TypeState,
        guard: Block,
    ) -> Result<(), FormatError> {
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

    pub(super) fn ts_of(&self, regs: &[Option<Value>; NREG]) -> TypeState {
        regs.iter()
            .map(|r| r.map(|v| self.f.ty(v).clone()))
            .collect()
    }

    pub(super) fn call_to(
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

    /// `None`: the jump is ignored; `Some(Ok(t))`: jump to t; `Some(Err)`: the jump stores a
    /// float address and the next fetch faults.
    pub(super) fn jump_target(
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
}
