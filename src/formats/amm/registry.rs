//! AMM's instruction set as one table: each opcode's name (the constants of
//! [`super::opcodes`]), its parameters as AMM's client registers them, its category, and
//! what the genetic operators may do with it. The evolution operators
//! (`crate::evolve::amm_ops`) and the random-program generator ([`super::random`]) read it;
//! the lowering dispatches on the same constants.

use super::opcodes as op;

/// A parameter's role, which decides how it is drawn and clamped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// A general register (drawn 1..=9, clamped to 0..=19).
    Reg,
    /// A special register (input slot 0..=6).
    Special,
    /// A reduction axis (-1 or 0).
    Axis,
    /// A float constant (drawn in [-1, 1), clamped to [-100, 100]).
    Const,
}

/// An opcode's category: a mutated opcode stays in its category.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Category {
    /// 1..=21: elementwise arithmetic.
    Arithmetic,
    /// 100..=199: loads, matmul, transpose, clone.
    Tensor,
    /// 200..=249: reductions.
    Reduction,
    /// 250..=349: network ops.
    Nn,
    /// 350..=399: built-in losses.
    Loss,
    /// 400..=449: comparisons and select.
    Logical,
    /// 450..=499: jumps and return.
    Control,
}

/// What AMM's genetic operators may do with an opcode.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Evolvable {
    /// Drawn for new instructions and as a mutation's new opcode; its parameters repaired.
    Yes,
    /// In AMM's client registry (its parameters are repaired) but in no category, so never
    /// drawn.
    ParamsOnly,
    /// Not in AMM's client registry: never drawn, parameters left as they are.
    No,
}

/// One opcode.
#[derive(Clone, Copy, Debug)]
pub struct Instr {
    /// The opcode.
    pub code: i64,
    /// Its name in AMM's interpreter.
    pub name: &'static str,
    /// Its parameters in order (destination last, except LOAD and LOAD_CONST, which write
    /// their first).
    pub params: &'static [Param],
    /// Its category.
    pub category: Category,
    /// What the genetic operators may do with it.
    pub evolvable: Evolvable,
}

use Category::*;
use Evolvable::{No, ParamsOnly, Yes};
use Param::{Axis, Const, Reg, Special};

const fn i(
    code: i64,
    name: &'static str,
    params: &'static [Param],
    category: Category,
    evolvable: Evolvable,
) -> Instr {
    Instr {
        code,
        name,
        params,
        category,
        evolvable,
    }
}

const R2: &[Param] = &[Reg, Reg];
const R3: &[Param] = &[Reg, Reg, Reg];
const RED: &[Param] = &[Reg, Axis, Reg];

/// Every opcode the front end knows, in opcode order.
pub const INSTRUCTIONS: &[Instr] = &[
    i(op::ADD, "ADD", R3, Arithmetic, Yes),
    i(op::SUB, "SUB", R3, Arithmetic, Yes),
    i(op::MUL, "MUL", R3, Arithmetic, Yes),
    i(op::DIV, "DIV", R3, Arithmetic, Yes),
    i(op::POW, "POW", R3, Arithmetic, Yes),
    i(op::SQRT, "SQRT", R2, Arithmetic, Yes),
    i(op::LOG, "LOG", R2, Arithmetic, Yes),
    i(op::EXP, "EXP", R2, Arithmetic, Yes),
    i(op::ABS, "ABS", R2, Arithmetic, Yes),
    i(op::SQUARE, "SQUARE", R2, Arithmetic, Yes),
    i(op::NEGATE, "NEGATE", R2, Arithmetic, Yes),
    i(op::RECIPROCAL, "RECIPROCAL", R2, Arithmetic, Yes),
    i(
        op::ADD_CONST,
        "ADD_CONST",
        &[Reg, Const, Reg],
        Arithmetic,
        Yes,
    ),
    i(
        op::MUL_CONST,
        "MUL_CONST",
        &[Reg, Const, Reg],
        Arithmetic,
        Yes,
    ),
    i(op::LOAD, "LOAD", &[Reg, Special], Tensor, Yes),
    i(op::LOAD_CONST, "LOAD_CONST", &[Reg, Const], Tensor, Yes),
    i(op::MATMUL, "MATMUL", R3, Tensor, Yes),
    i(op::TRANSPOSE, "TRANSPOSE", R2, Tensor, Yes),
    i(op::CLONE, "CLONE", R2, Tensor, Yes),
    i(op::SUM, "SUM", RED, Reduction, Yes),
    i(op::MEAN, "MEAN", RED, Reduction, Yes),
    i(op::MAX, "MAX", RED, Reduction, Yes),
    i(op::MIN, "MIN", RED, Reduction, Yes),
    i(op::STD, "STD", RED, Reduction, No),
    i(op::RELU, "RELU", R2, Nn, Yes),
    i(op::SIGMOID, "SIGMOID", R2, Nn, Yes),
    i(op::TANH, "TANH", R2, Nn, Yes),
    i(op::SOFTMAX, "SOFTMAX", R2, Nn, Yes),
    i(op::MAXIMUM, "MAXIMUM", R3, Nn, ParamsOnly),
    i(op::MSE, "MSE", R3, Loss, Yes),
    i(op::MAE, "MAE", R3, Loss, Yes),
    i(op::BCE, "BCE", R3, Loss, Yes),
    i(op::GT, "GT", R3, Logical, Yes),
    i(op::GE, "GE", R3, Logical, Yes),
    i(op::WHERE, "WHERE", &[Reg, Reg, Reg, Reg], Logical, Yes),
    i(op::JUMP, "JUMP", &[Const], Control, No),
    i(op::JUMP_IF, "JUMP_IF", &[Reg, Const], Control, No),
    i(op::RETURN, "RETURN", &[Reg], Control, No),
    i(op::END, "END", &[], Control, No),
];

/// The categories new instructions are drawn from, in AMM's order (control flow is never
/// inserted or mutated into).
pub const DRAWN_CATEGORIES: [Category; 6] = [Arithmetic, Tensor, Reduction, Nn, Loss, Logical];

/// The table entry of `code`.
pub fn lookup(code: i64) -> Option<&'static Instr> {
    INSTRUCTIONS.iter().find(|x| x.code == code)
}

/// The opcodes of `category` the genetic operators draw, in opcode order.
pub fn drawn_codes(category: Category) -> Vec<i64> {
    INSTRUCTIONS
        .iter()
        .filter(|x| x.category == category && x.evolvable == Evolvable::Yes)
        .map(|x| x.code)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_are_unique_sorted_and_in_their_category_range() {
        for w in INSTRUCTIONS.windows(2) {
            assert!(w[0].code < w[1].code, "{} then {}", w[0].name, w[1].name);
        }
        for x in INSTRUCTIONS {
            let range = match x.category {
                Arithmetic => 1..=21,
                Tensor => 100..=199,
                Reduction => 200..=249,
                Nn => 250..=349,
                Loss => 350..=399,
                Logical => 400..=449,
                Control => 450..=499,
            };
            assert!(range.contains(&x.code), "{} ({})", x.name, x.code);
        }
    }
}
