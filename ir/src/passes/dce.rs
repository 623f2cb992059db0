//! Dead-op removal (AutoML-Zero's intron removal): drops instructions whose results no
//! terminator needs, and blocks the entry cannot reach. Every op is pure, so this never
//! changes a result.

use crate::function::Function;
use crate::verify::reverse_postorder;
use std::collections::HashSet;

/// Remove dead instructions and unreachable blocks; returns how many instructions went.
pub fn dce(f: &mut Function) -> usize {
    let before = f.inst_count();
    let reachable: Vec<_> = reverse_postorder(f);
    let keep: HashSet<_> = reachable.iter().copied().collect();
    f.layout.retain(|b| keep.contains(b));
    let mut live = HashSet::new();
    for &b in &f.layout {
        live.extend(f.blocks[b].term.uses());
    }
    // Walk blocks and instructions backwards until nothing changes (loops carry values).
    loop {
        let n = live.len();
        for &b in f.layout.iter().rev() {
            for &i in f.blocks[b].insts.iter().rev() {
                let inst = &f.insts[i];
                if live.contains(&inst.result) {
                    live.extend(inst.args.iter().copied());
                }
            }
        }
        if live.len() == n {
            break;
        }
    }
    let layout = f.layout.clone();
    for b in layout {
        let insts: Vec<_> = f.blocks[b]
            .insts
            .iter()
            .copied()
            .filter(|i| live.contains(&f.insts[*i].result))
            .collect();
        f.blocks[b].insts = insts;
    }
    before - f.inst_count()
}
