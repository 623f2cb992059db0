//! Canonical form: commutative operands sorted by a structural (Merkle) hash of the value
//! they name, and each block's instructions scheduled in depth-first order from the values
//! its terminator (and later blocks) need. Two functions that compute the same DAG then print
//! the same text, whatever order their genomes wrote it in.

use crate::entities::Value;
use crate::function::{Function, ValueDef};
use crate::verify::reverse_postorder;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Structural hash of every value: params by position, instructions by op, immediate and
/// the hashes of their operands (sorted for commutative ops).
pub fn structural_hashes(f: &Function) -> HashMap<Value, u64> {
    let mut h: HashMap<Value, u64> = HashMap::new();
    for (bi, b) in reverse_postorder(f).into_iter().enumerate() {
        for (k, &p) in f.blocks[b].params.iter().enumerate() {
            let mut s = DefaultHasher::new();
            ("param", bi, k, f.ty(p)).hash(&mut s);
            h.insert(p, s.finish());
        }
        for &i in &f.blocks[b].insts {
            let inst = &f.insts[i];
            let mut args: Vec<u64> = inst
                .args
                .iter()
                .map(|a| h.get(a).copied().unwrap_or(0))
                .collect();
            if inst.op.is_commutative() {
                args.sort();
            }
            let mut s = DefaultHasher::new();
            (inst.op, &inst.imm, args, f.ty(inst.result)).hash(&mut s);
            h.insert(inst.result, s.finish());
        }
    }
    h
}

/// Canonicalize operand order and instruction schedule; returns how many commutative
/// instructions had their operands swapped.
pub fn canon(f: &mut Function) -> usize {
    let h = structural_hashes(f);
    let mut swapped = 0;
    for b in f.layout.clone() {
        for i in f.blocks[b].insts.clone() {
            let inst = &mut f.insts[i];
            if inst.op.is_commutative() && inst.args.len() == 2 {
                let (x, y) = (inst.args[0], inst.args[1]);
                if h.get(&x).copied().unwrap_or(0) > h.get(&y).copied().unwrap_or(0) {
                    inst.args.swap(0, 1);
                    swapped += 1;
                }
            }
        }
    }
    // Values each block must provide to other blocks.
    let mut needed_elsewhere: HashMap<crate::Block, Vec<Value>> = HashMap::new();
    for &b in &f.layout {
        let mut uses: Vec<Value> = f.blocks[b].term.uses();
        for &i in &f.blocks[b].insts {
            uses.extend(&f.insts[i].args);
        }
        for v in uses {
            if let ValueDef::Inst(i) = f.values[v].def
                && let Some(&db) = f.layout.iter().find(|bb| f.blocks[**bb].insts.contains(&i))
                && db != b
            {
                needed_elsewhere.entry(db).or_default().push(v);
            }
        }
    }
    for b in f.layout.clone() {
        let insts = f.blocks[b].insts.clone();
        let here: HashMap<Value, crate::Inst> =
            insts.iter().map(|i| (f.insts[*i].result, *i)).collect();
        let mut roots = f.blocks[b].term.uses();
        let mut extra = needed_elsewhere.remove(&b).unwrap_or_default();
        extra.sort_by_key(|v| h.get(v).copied().unwrap_or(0));
        roots.extend(extra);
        let mut order = Vec::with_capacity(insts.len());
        let mut done: HashSet<Value> = HashSet::new();
        for r in roots {
            // Iterative post-order DFS over operands defined in this block.
            let mut stack = vec![(r, false)];
            while let Some((v, expanded)) = stack.pop() {
                let Some(&i) = here.get(&v) else { continue };
                if done.contains(&v) {
                    continue;
                }
                if expanded {
                    done.insert(v);
                    order.push(i);
                } else {
                    stack.push((v, true));
                    for a in f.insts[i].args.iter().rev() {
                        if !done.contains(a) {
                            stack.push((*a, false));
                        }
                    }
                }
            }
        }
        for i in insts {
            if !done.contains(&f.insts[i].result) {
                order.push(i);
            }
        }
        f.blocks[b].insts = order;
    }
    swapped
}
