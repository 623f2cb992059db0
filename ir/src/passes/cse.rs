//! Common-subexpression elimination. Every op is pure, so two instructions with the same op,
//! immediate and operands (in canonical order for commutative ops) compute the same value;
//! the later one is replaced when the earlier one's block dominates it.

use crate::entities::{Block, Value};
use crate::function::Function;
use crate::op::{Imm, Opcode};
use crate::verify::{dominates, dominators, reverse_postorder};
use std::collections::HashMap;

/// What makes two instructions compute the same value.
type InstKey = (Opcode, Imm, Vec<Value>);

/// Merge identical instructions; returns how many were replaced.
pub fn cse(f: &mut Function) -> usize {
    let idom = dominators(f);
    let mut seen: HashMap<InstKey, Vec<(Value, Block)>> = HashMap::new();
    let mut map: HashMap<Value, Value> = HashMap::new();
    let resolve = |map: &HashMap<Value, Value>, v: Value| *map.get(&v).unwrap_or(&v);
    for b in reverse_postorder(f) {
        let insts = f.blocks[b].insts.clone();
        let mut kept = Vec::with_capacity(insts.len());
        for i in insts {
            let inst = &f.insts[i];
            let mut args: Vec<Value> = inst.args.iter().map(|a| resolve(&map, *a)).collect();
            if inst.op.is_commutative() {
                args.sort();
            }
            let key = (inst.op, inst.imm.clone(), args);
            let hit = seen.get(&key).and_then(|cands| {
                cands
                    .iter()
                    .find(|(_, db)| dominates(&idom, *db, b))
                    .map(|(v, _)| *v)
            });
            match hit {
                Some(v) if f.ty(v) == f.ty(inst.result) => {
                    map.insert(inst.result, v);
                }
                _ => {
                    seen.entry(key).or_default().push((inst.result, b));
                    kept.push(i);
                }
            }
        }
        f.blocks[b].insts = kept;
    }
    let n = map.len();
    f.substitute(&map);
    n
}
