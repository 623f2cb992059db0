//! The verifier. It collects every error, each with its location, instead of stopping at the
//! first. Invariants checked:
//!
//! 1. The layout is non-empty and names each block once; every jump target is in the layout.
//! 2. The entry block has two parameters of one type `f32[d0,d1]` (`y_pred`, `y_true`).
//! 3. Each instruction appears in exactly one block; its operand count, immediate kind and
//!    operand types satisfy the op's type rule, and its result type is the inferred one.
//! 4. Every operand is defined, and its definition dominates the use (earlier in the same
//!    block, or in a dominating block; block parameters dominate their whole block).
//! 5. `return` values match the function's result types; jump arguments match the target's
//!    parameter count and types; a `brif` condition is a bool scalar.
//! 6. Every block parameter belongs to the block that lists it; no value is defined twice.

use crate::IrError;
use crate::entities::{Block, Inst, Value};
use crate::function::{BlockCall, Function, Terminator, ValueDef};
use crate::op::infer_type;
use crate::types::{DType, Type};
use std::collections::{HashMap, HashSet};

/// Reverse post-order of the blocks reachable from the entry.
pub fn reverse_postorder(f: &Function) -> Vec<Block> {
    let mut seen = HashSet::new();
    let mut post = Vec::new();
    let Some(&entry) = f.layout.first() else {
        return post;
    };
    let mut stack = vec![(entry, 0usize)];
    seen.insert(entry);
    while let Some((b, i)) = stack.pop() {
        let succ = f.blocks[b].term.successors();
        if i < succ.len() {
            stack.push((b, i + 1));
            let s = succ[i];
            if f.blocks.contains(s) && seen.insert(s) {
                stack.push((s, 0));
            }
        } else {
            post.push(b);
        }
    }
    post.reverse();
    post
}

/// Immediate dominators (Cooper, Harvey, Kennedy), for blocks reachable from the entry.
pub fn dominators(f: &Function) -> HashMap<Block, Block> {
    let rpo = reverse_postorder(f);
    let index: HashMap<Block, usize> = rpo.iter().enumerate().map(|(i, b)| (*b, i)).collect();
    let mut preds: HashMap<Block, Vec<Block>> = HashMap::new();
    for &b in &rpo {
        for s in f.blocks[b].term.successors() {
            preds.entry(s).or_default().push(b);
        }
    }
    let mut idom: HashMap<Block, Block> = HashMap::new();
    let Some(&entry) = rpo.first() else {
        return idom;
    };
    idom.insert(entry, entry);
    let mut changed = true;
    while changed {
        changed = false;
        for &b in rpo.iter().skip(1) {
            let mut new: Option<Block> = None;
            for &p in preds.get(&b).map(|v| v.as_slice()).unwrap_or(&[]) {
                if !idom.contains_key(&p) {
                    continue;
                }
                new = Some(match new {
                    None => p,
                    Some(mut a) => {
                        let mut c = p;
                        while a != c {
                            while index[&a] > index[&c] {
                                a = idom[&a];
                            }
                            while index[&c] > index[&a] {
                                c = idom[&c];
                            }
                        }
                        a
                    }
                });
            }
            if let Some(n) = new
                && idom.get(&b) != Some(&n)
            {
                idom.insert(b, n);
                changed = true;
            }
        }
    }
    idom
}

/// Whether block `a` dominates block `b` under the immediate-dominator map `idom` (from
/// [`dominators`]); every block dominates itself.
pub(crate) fn dominates(idom: &HashMap<Block, Block>, a: Block, mut b: Block) -> bool {
    loop {
        if a == b {
            return true;
        }
        match idom.get(&b) {
            Some(&p) if p != b => b = p,
            _ => return false,
        }
    }
}

/// Check every invariant listed in the module doc; `Err` lists every violation found.
pub fn verify(f: &Function) -> Result<(), IrError> {
    let mut errs: Vec<String> = Vec::new();
    if f.layout.is_empty() {
        return Err(IrError::Verify(vec!["function: no blocks".into()]));
    }
    let mut in_layout = HashSet::new();
    for &b in &f.layout {
        if !f.blocks.contains(b) {
            errs.push(format!("layout: {b} does not exist"));
        } else if !in_layout.insert(b) {
            errs.push(format!("layout: {b} appears twice"));
        }
    }
    if !errs.is_empty() {
        return Err(IrError::Verify(errs));
    }
    let entry = f.layout[0];
    let eparams = &f.blocks[entry].params;
    let ok_entry = eparams.len() == 2
        && f.ty(eparams[0]) == f.ty(eparams[1])
        && f.ty(eparams[0]).dtype == DType::F32
        && f.ty(eparams[0]).rank() == 2;
    if !ok_entry {
        errs.push(format!(
            "{entry}: the entry block must take (y_pred, y_true), two f32 rank-2 values of one type"
        ));
    }

    // Where each value is defined: (block, position), position usize::MAX-1 for params.
    let mut def_pos: HashMap<Value, (Block, usize)> = HashMap::new();
    let mut seen_inst: HashSet<Inst> = HashSet::new();
    for &b in &f.layout {
        for (n, &p) in f.blocks[b].params.iter().enumerate() {
            if !f.values.contains(p) {
                errs.push(format!("{b}: parameter {n} is not a value"));
                continue;
            }
            if f.values[p].def != ValueDef::Param(b, n) {
                errs.push(format!(
                    "{b}: parameter {p} is recorded as defined elsewhere"
                ));
            }
            if def_pos.insert(p, (b, 0)).is_some() {
                errs.push(format!("{b}: {p} is defined twice"));
            }
        }
        for (pos, &i) in f.blocks[b].insts.iter().enumerate() {
            if !seen_inst.insert(i) {
                errs.push(format!("{b}: {i} appears in more than one place"));
                continue;
            }
            let r = f.insts[i].result;
            if f.values[r].def != ValueDef::Inst(i) {
                errs.push(format!(
                    "{b}: result {r} of {i} is recorded as defined elsewhere"
                ));
            }
            if def_pos.insert(r, (b, pos + 1)).is_some() {
                errs.push(format!("{b}: {r} is defined twice"));
            }
        }
    }
    let idom = dominators(f);
    let check_use =
        |errs: &mut Vec<String>, v: Value, at: (Block, usize), what: &str| match def_pos.get(&v) {
            None => errs.push(format!(
                "{}: {what} uses {v}, which is not defined in the function",
                at.0
            )),
            Some(&(db, dp)) => {
                let ok = if db == at.0 {
                    dp < at.1 || (dp == 0 && at.1 == 0)
                } else {
                    dominates(&idom, db, at.0)
                };
                let reachable = idom.contains_key(&at.0);
                if !ok && reachable {
                    errs.push(format!(
                        "{}: {what} uses {v}, whose definition does not dominate the use",
                        at.0
                    ));
                }
            }
        };
    for &b in &f.layout {
        for (pos, &i) in f.blocks[b].insts.iter().enumerate() {
            let inst = &f.insts[i];
            let what = format!("{} = {}", inst.result, inst.op.name());
            let mut args_ok = true;
            for &a in &inst.args {
                if !f.values.contains(a) {
                    errs.push(format!(
                        "{b}: `{what}` has operand {a}, which does not exist"
                    ));
                    args_ok = false;
                } else {
                    check_use(&mut errs, a, (b, pos + 1), &format!("`{what}`"));
                }
            }
            if args_ok {
                let tys: Vec<&Type> = inst.args.iter().map(|a| f.ty(*a)).collect();
                match infer_type(inst.op, &inst.imm, &tys) {
                    Ok(t) if &t == f.ty(inst.result) => {}
                    Ok(t) => errs.push(format!(
                        "{b}: `{what}` has type {} but its rule gives {t}",
                        f.ty(inst.result)
                    )),
                    Err(e) => errs.push(format!("{b}: `{what}`: {e}")),
                }
            }
        }
        let end = f.blocks[b].insts.len() + 1;
        let term = &f.blocks[b].term;
        for v in term.uses() {
            if !f.values.contains(v) {
                errs.push(format!(
                    "{b}: the terminator uses {v}, which does not exist"
                ));
            } else {
                check_use(&mut errs, v, (b, end), "the terminator");
            }
        }
        let check_call = |errs: &mut Vec<String>, c: &BlockCall| {
            if !in_layout.contains(&c.block) {
                errs.push(format!(
                    "{b}: jumps to {}, which is not in the function",
                    c.block
                ));
                return;
            }
            let params = &f.blocks[c.block].params;
            if params.len() != c.args.len() {
                errs.push(format!(
                    "{b}: jumps to {} with {} arguments; it takes {}",
                    c.block,
                    c.args.len(),
                    params.len()
                ));
                return;
            }
            for (k, (a, p)) in c.args.iter().zip(params).enumerate() {
                if f.values.contains(*a) && f.ty(*a) != f.ty(*p) {
                    errs.push(format!(
                        "{b}: argument {k} to {} is {} but the parameter is {}",
                        c.block,
                        f.ty(*a),
                        f.ty(*p)
                    ));
                }
            }
        };
        match term {
            Terminator::Return(vs) => {
                let got: Vec<Option<&Type>> =
                    vs.iter().map(|v| f.values.get(*v).map(|d| &d.ty)).collect();
                let want: Vec<Option<&Type>> = f.results.iter().map(Some).collect();
                if got != want {
                    errs.push(format!(
                        "{b}: `return` does not match the result types {:?}",
                        f.results.iter().map(|t| t.to_string()).collect::<Vec<_>>()
                    ));
                }
            }
            Terminator::Jump(c) => check_call(&mut errs, c),
            Terminator::Brif(cnd, x, y) => {
                if f.values.contains(*cnd) && *f.ty(*cnd) != Type::scalar(DType::Bool) {
                    errs.push(format!(
                        "{b}: `brif` condition {cnd} is {}, not bool",
                        f.ty(*cnd)
                    ));
                }
                check_call(&mut errs, x);
                check_call(&mut errs, y);
            }
            Terminator::Trap(_) => {}
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(IrError::Verify(errs))
    }
}
