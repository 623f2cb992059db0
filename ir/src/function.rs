//! Functions: the data-flow graph (what each value is) kept apart from the layout (the order of
//! blocks and of the instructions inside them), as in cranelift's `dfg.rs` / `layout.rs`.

use crate::IrError;
use crate::entities::{Arena, Block, EntityRef, Inst, Value};
use crate::op::{Imm, Opcode, infer_type};
use crate::types::Type;
use std::collections::HashMap;
use std::fmt;

/// One instruction: an op applied to operands, producing exactly one value.
#[derive(Clone, Debug, PartialEq)]
pub struct InstData {
    /// The op.
    pub op: Opcode,
    /// Its immediate.
    pub imm: Imm,
    /// Value operands.
    pub args: Vec<Value>,
    /// The value it defines.
    pub result: Value,
}

/// Where a value comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The result of an instruction.
    Inst(Inst),
    /// Parameter `n` of a block.
    Param(Block, usize),
}

/// A value's type and definition.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueData {
    /// Its type.
    pub ty: Type,
    /// Where it is defined.
    pub def: ValueDef,
}

/// A jump target with the arguments bound to its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockCall {
    /// Target block.
    pub block: Block,
    /// Arguments, one per block parameter.
    pub args: Vec<Value>,
}

/// Why a program faults. A fault is a defined outcome: AMM's loss wrapper turns it into a
/// constant loss of 1.0 without gradient, and AMM's trainer into fitness -inf.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrapCode {
    /// Execution ran past the end (or hit END) without reaching RETURN.
    NoReturn,
    /// The instruction budget ran out before RETURN.
    BudgetExhausted,
    /// A taken jump stored a non-integer instruction pointer; the next fetch failed.
    BadJumpTarget,
    /// The program has no instructions.
    EmptyProgram,
    /// RETURN without an operand, or with one that cannot be an index.
    BadReturn,
    /// The result is a non-scalar tensor that cannot be averaged (integer or bool).
    NonFloatResult,
    /// An opcode that is not a number makes AMM's interpreter fail while loading the program.
    BadOpcode,
    /// The HAZ interpreter raises (a shape torch rejects, a slot holding `None`, a bad
    /// address, ...) or `loss.backward()` does (the loss does not require grad).
    HazFault,
}

impl TrapCode {
    /// All trap codes.
    pub const ALL: [TrapCode; 8] = [
        TrapCode::NoReturn,
        TrapCode::BudgetExhausted,
        TrapCode::BadJumpTarget,
        TrapCode::EmptyProgram,
        TrapCode::BadReturn,
        TrapCode::NonFloatResult,
        TrapCode::BadOpcode,
        TrapCode::HazFault,
    ];
    /// Text-form name.
    pub fn name(self) -> &'static str {
        match self {
            TrapCode::NoReturn => "no_return",
            TrapCode::BudgetExhausted => "budget_exhausted",
            TrapCode::BadJumpTarget => "bad_jump_target",
            TrapCode::EmptyProgram => "empty_program",
            TrapCode::BadReturn => "bad_return",
            TrapCode::NonFloatResult => "non_float_result",
            TrapCode::BadOpcode => "bad_opcode",
            TrapCode::HazFault => "haz_fault",
        }
    }
    /// Parse a text-form name.
    pub fn from_name(s: &str) -> Option<TrapCode> {
        TrapCode::ALL.into_iter().find(|t| t.name() == s)
    }
    /// A sentence for users.
    pub fn describe(self) -> &'static str {
        match self {
            TrapCode::NoReturn => "the program ended without reaching RETURN",
            TrapCode::BudgetExhausted => "the instruction budget ran out before RETURN",
            TrapCode::BadJumpTarget => "a jump to a non-integer address made the next fetch fail",
            TrapCode::EmptyProgram => "the program has no instructions",
            TrapCode::BadReturn => "RETURN has no usable register operand",
            TrapCode::NonFloatResult => {
                "the result is an integer or bool tensor that cannot be averaged"
            }
            TrapCode::BadOpcode => {
                "an opcode that is not a number makes the interpreter fail while loading the program"
            }
            TrapCode::HazFault => {
                "the HAZ interpreter raises (bad shapes, a None slot, a bad address, ...) or loss.backward() does"
            }
        }
    }
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a block ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Terminator {
    /// Return the function's results.
    Return(Vec<Value>),
    /// Unconditional jump.
    Jump(BlockCall),
    /// `brif cond, then, else`: `cond` is a bool scalar.
    Brif(Value, BlockCall, BlockCall),
    /// Fault.
    Trap(TrapCode),
}

impl Terminator {
    /// The values this terminator reads.
    pub fn uses(&self) -> Vec<Value> {
        match self {
            Terminator::Return(vs) => vs.clone(),
            Terminator::Jump(c) => c.args.clone(),
            Terminator::Brif(v, a, b) => {
                let mut out = vec![*v];
                out.extend(&a.args);
                out.extend(&b.args);
                out
            }
            Terminator::Trap(_) => Vec::new(),
        }
    }
    /// The blocks this terminator may jump to.
    pub fn successors(&self) -> Vec<Block> {
        match self {
            Terminator::Jump(c) => vec![c.block],
            Terminator::Brif(_, a, b) => vec![a.block, b.block],
            _ => Vec::new(),
        }
    }
    fn map_values(&mut self, f: &mut impl FnMut(Value) -> Value) {
        match self {
            Terminator::Return(vs) => vs.iter_mut().for_each(|v| *v = f(*v)),
            Terminator::Jump(c) => c.args.iter_mut().for_each(|v| *v = f(*v)),
            Terminator::Brif(v, a, b) => {
                *v = f(*v);
                a.args.iter_mut().for_each(|v| *v = f(*v));
                b.args.iter_mut().for_each(|v| *v = f(*v));
            }
            Terminator::Trap(_) => {}
        }
    }
}

/// A block: parameters, instructions in order, and a terminator.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockData {
    /// Block parameters (the entry block's are the function's inputs).
    pub params: Vec<Value>,
    /// Instructions in execution order.
    pub insts: Vec<Inst>,
    /// How the block ends.
    pub term: Terminator,
}

/// A function: `(y_pred, y_true) -> results`. The entry block is `layout[0]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// Name (printed, not hashed).
    pub name: String,
    /// Every instruction ever created; only those in a block's `insts` are live.
    pub insts: Arena<Inst, InstData>,
    /// Every value ever created.
    pub values: Arena<Value, ValueData>,
    /// Every block ever created; only those in `layout` are live.
    pub blocks: Arena<Block, BlockData>,
    /// Live blocks in order; the first is the entry.
    pub layout: Vec<Block>,
    /// Result types.
    pub results: Vec<Type>,
}

impl Function {
    /// A function with an entry block whose parameters have `params` types. The entry block
    /// starts with a `trap no_return` terminator until one is set.
    pub fn new(name: impl Into<String>, params: &[Type], results: Vec<Type>) -> (Function, Block) {
        let mut f = Function {
            name: name.into(),
            insts: Arena::new(),
            values: Arena::new(),
            blocks: Arena::new(),
            layout: Vec::new(),
            results,
        };
        let entry = f.add_block();
        for t in params {
            f.add_block_param(entry, t.clone());
        }
        (f, entry)
    }

    /// The entry block.
    pub fn entry(&self) -> Block {
        self.layout[0]
    }

    /// Create an empty block at the end of the layout.
    pub fn add_block(&mut self) -> Block {
        let b = self.blocks.push(BlockData {
            params: Vec::new(),
            insts: Vec::new(),
            term: Terminator::Trap(TrapCode::NoReturn),
        });
        self.layout.push(b);
        b
    }

    /// Append a parameter of type `ty` to `block`.
    pub fn add_block_param(&mut self, block: Block, ty: Type) -> Value {
        let n = self.blocks[block].params.len();
        let v = self.values.push(ValueData {
            ty,
            def: ValueDef::Param(block, n),
        });
        self.blocks[block].params.push(v);
        v
    }

    /// The type of `v`.
    pub fn ty(&self, v: Value) -> &Type {
        &self.values[v].ty
    }

    /// Append `op imm args` to `block`, inferring its type.
    pub fn ins(
        &mut self,
        block: Block,
        op: Opcode,
        imm: Imm,
        args: &[Value],
    ) -> Result<Value, IrError> {
        let tys: Vec<&Type> = args.iter().map(|a| &self.values[*a].ty).collect();
        let ty = infer_type(op, &imm, &tys).map_err(IrError::Type)?;
        Ok(self.push_inst(block, op, imm, args.to_vec(), ty))
    }

    /// Append an instruction whose type is already known (the parser and passes use it; the
    /// verifier re-checks).
    pub fn push_inst(
        &mut self,
        block: Block,
        op: Opcode,
        imm: Imm,
        args: Vec<Value>,
        ty: Type,
    ) -> Value {
        let inst = <Inst as EntityRef>::new(self.insts.len());
        let result = self.values.push(ValueData {
            ty,
            def: ValueDef::Inst(inst),
        });
        let pushed = self.insts.push(InstData {
            op,
            imm,
            args,
            result,
        });
        debug_assert_eq!(pushed, inst);
        self.blocks[block].insts.push(inst);
        result
    }

    /// Set how `block` ends.
    pub fn set_term(&mut self, block: Block, term: Terminator) {
        self.blocks[block].term = term;
    }

    /// The instruction defining `v`, if it is an instruction result.
    pub fn def_inst(&self, v: Value) -> Option<&InstData> {
        match self.values[v].def {
            ValueDef::Inst(i) => Some(&self.insts[i]),
            ValueDef::Param(..) => None,
        }
    }

    /// Rewrite every use of a value according to `map` (chains are followed).
    pub fn substitute(&mut self, map: &HashMap<Value, Value>) {
        if map.is_empty() {
            return;
        }
        let resolve = |mut v: Value| {
            let mut hops = 0;
            while let Some(&n) = map.get(&v) {
                v = n;
                hops += 1;
                if hops > map.len() {
                    break;
                }
            }
            v
        };
        for &b in &self.layout {
            for &i in &self.blocks[b].insts {
                for a in self.insts[i].args.iter_mut() {
                    *a = resolve(*a);
                }
            }
        }
        let layout = self.layout.clone();
        for b in layout {
            let mut f = resolve;
            self.blocks[b].term.map_values(&mut f);
        }
    }

    /// Number of live instructions.
    pub fn inst_count(&self) -> usize {
        self.layout
            .iter()
            .map(|b| self.blocks[*b].insts.len())
            .sum()
    }

    /// Whether the function is a single block (no control flow).
    pub fn is_straight_line(&self) -> bool {
        self.layout.len() == 1
    }
}
