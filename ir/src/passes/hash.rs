//! The canonical structural hash: SHA-256 of the canonical text of a function (its name
//! left out). Genomes that optimize to the same IR hash equal.

use super::canon::canon;
use crate::entities::{EntityRef, Value};
use crate::function::{BlockCall, Function, Terminator};
use crate::op::{Axis, ConstVal, Imm};
use crate::text::print_function;
use crate::types::{Dim, Type};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Hex SHA-256 (first 128 bits) of `f`'s canonical form. Run the optimizer first for the
/// hash to identify functionally identical genomes.
pub fn canonical_hash(f: &Function) -> String {
    let mut g = f.clone();
    canon(&mut g);
    g.name = "_".into();
    let text = print_function(&g);
    let digest = Sha256::digest(text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// `f`'s structure as words, for exact-match caches within one process (the JIT's kernel
/// cache): two functions have equal keys exactly when they print the same text, names
/// aside (values and blocks are numbered in layout order, as the printer names them). No
/// text is formatted, so it costs a fraction of [`canonical_hash`]; the encoding is not
/// stable across versions.
pub fn structure_key(f: &Function) -> Vec<u64> {
    let mut k = StructureKey {
        out: Vec::with_capacity(16 * f.insts.len() + 16),
        values: HashMap::new(),
    };
    k.out.push(f.results.len() as u64);
    for t in &f.results {
        k.ty(t);
    }
    let blocks: HashMap<_, u64> = f
        .layout
        .iter()
        .enumerate()
        .map(|(n, b)| (*b, n as u64))
        .collect();
    for &b in &f.layout {
        let data = &f.blocks[b];
        k.out.push(data.params.len() as u64);
        for &p in &data.params {
            k.define(p);
            k.ty(f.ty(p));
        }
        k.out.push(data.insts.len() as u64);
        for &i in &data.insts {
            let d = &f.insts[i];
            k.out.push(d.op as u64);
            k.imm(&d.imm);
            k.out.push(d.args.len() as u64);
            for &a in &d.args {
                k.use_value(a);
            }
            k.define(d.result);
            k.ty(f.ty(d.result));
        }
        let call = |k: &mut StructureKey, c: &BlockCall| {
            k.out
                .push(blocks.get(&c.block).copied().unwrap_or(u64::MAX));
            k.out.push(c.args.len() as u64);
            for &a in &c.args {
                k.use_value(a);
            }
        };
        match &data.term {
            Terminator::Return(vs) => {
                k.out.extend([0, vs.len() as u64]);
                for &v in vs {
                    k.use_value(v);
                }
            }
            Terminator::Jump(c) => {
                k.out.push(1);
                call(&mut k, c);
            }
            Terminator::Brif(v, a, b) => {
                k.out.push(2);
                k.use_value(*v);
                call(&mut k, a);
                call(&mut k, b);
            }
            Terminator::Trap(t) => k.out.extend([3, *t as u64]),
        }
    }
    k.out
}

struct StructureKey {
    out: Vec<u64>,
    /// Layout-order numbers of the values defined so far.
    values: HashMap<Value, u64>,
}

impl StructureKey {
    fn define(&mut self, v: Value) {
        let n = self.values.len() as u64;
        self.values.insert(v, n);
    }

    /// A value by its layout-order number; one not defined (yet) by its own index, marked,
    /// as the printer prints such a value by its own name.
    fn use_value(&mut self, v: Value) {
        let w = match self.values.get(&v) {
            Some(n) => *n,
            None => (1 << 63) | v.index() as u64,
        };
        self.out.push(w);
    }

    fn dim(&mut self, d: Dim) {
        self.out.push(match d {
            Dim::B => 1 << 40,
            Dim::C => 2 << 40,
            Dim::Fixed(n) => n as u64,
        });
    }

    fn ty(&mut self, t: &Type) {
        self.out.push(t.dtype as u64);
        self.out.push(t.shape.len() as u64);
        for &d in &t.shape {
            self.dim(d);
        }
    }

    fn imm(&mut self, imm: &Imm) {
        match imm {
            Imm::None => self.out.push(0),
            Imm::Const(c) => self.out.extend(match c {
                ConstVal::F32(x) => [1, x.to_bits() as u64],
                ConstVal::I64(x) => [2, *x as u64],
                ConstVal::Bool(x) => [3, *x as u64],
            }),
            Imm::Axis(a) => self.out.extend([
                4,
                match a {
                    Axis::All => u64::MAX,
                    Axis::Index(i) => *i as u64,
                },
            ]),
            Imm::DType(t) => self.out.extend([5, *t as u64]),
            Imm::Dim(d) => {
                self.out.push(6);
                self.dim(*d);
            }
            Imm::Shape(s) => {
                self.out.extend([7, s.len() as u64]);
                for &d in s {
                    self.dim(d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{OptOptions, optimize};
    use crate::text::parse_function;

    const CE: &str = "function ce(f32[B,C], f32[B,C]) -> f32 {
block0(v0: f32[B,C], v1: f32[B,C]):
    v2 = softmax v0 : f32[B,C]
    v3 = const<1e-7> : f32
    v4 = max v2, v3 : f32[B,C]
    v5 = log v4 : f32[B,C]
    v6 = mul v1, v5 : f32[B,C]
    v7 = sum<1> v6 : f32[B]
    v8 = neg v7 : f32[B]
    v9 = mean<0> v8 : f32
    return v9
}";

    fn key(text: &str) -> Vec<u64> {
        let mut f = parse_function(text).unwrap();
        optimize(&mut f, OptOptions::default()).unwrap();
        canon(&mut f);
        structure_key(&f)
    }

    /// Equal keys exactly where the canonical texts are equal: the same function built with
    /// other value numbers and another name has the key; a changed constant, axis, op or
    /// shape does not.
    #[test]
    fn structure_key_matches_the_printed_text() {
        let base = key(CE);
        let renumbered = CE
            .replace("function ce", "function other")
            .replace("v9", "v19")
            .replace("v8", "v18");
        assert_eq!(key(&renumbered), base);
        for (from, to) in [
            ("1e-7", "1e-6"),
            ("sum<1>", "mean<1>"),
            ("softmax v0", "sigmoid v0"),
            ("mul v1, v5", "mul v5, v1"),
        ] {
            let changed = CE.replace(from, to);
            let (a, b) = (
                parse_function(&changed).unwrap(),
                parse_function(CE).unwrap(),
            );
            let same_text = canonical_hash(&a) == canonical_hash(&b);
            assert_eq!(
                key(&changed) == base,
                same_text,
                "{from} -> {to}: keys and texts disagree"
            );
            if from != "mul v1, v5" {
                assert_ne!(key(&changed), base, "{from} -> {to}");
            }
        }
    }
}
