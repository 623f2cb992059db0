//! Forward dependence: the values computed, through any chain of instructions or block
//! arguments, from a set of seed values (or from instructions a predicate marks as sources).
//! The simplifier asks what depends on y_pred; the JIT asks whether a branch condition
//! depends on the inputs at all.

use crate::function::{Function, InstData};
use crate::{Terminator, Value};
use std::collections::HashSet;

/// Every value that depends on one of `seeds` or on the result of an instruction for which
/// `source` holds, the seeds included.
pub fn depends_on(
    f: &Function,
    seeds: impl IntoIterator<Item = Value>,
    source: impl Fn(&InstData) -> bool,
) -> HashSet<Value> {
    let mut dep: HashSet<Value> = seeds.into_iter().collect();
    loop {
        let before = dep.len();
        for &b in &f.layout {
            for &i in &f.blocks[b].insts {
                let d = &f.insts[i];
                if source(d) || d.args.iter().any(|a| dep.contains(a)) {
                    dep.insert(d.result);
                }
            }
            let succs = match &f.blocks[b].term {
                Terminator::Jump(c) => vec![c],
                Terminator::Brif(_, x, y) => vec![x, y],
                _ => vec![],
            };
            for succ in succs {
                for (a, p) in succ.args.iter().zip(&f.blocks[succ.block].params) {
                    if dep.contains(a) {
                        dep.insert(*p);
                    }
                }
            }
        }
        if dep.len() == before {
            return dep;
        }
    }
}
