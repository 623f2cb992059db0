use crate::entities::{Block, Value};
use crate::function::{BlockCall, Function, Terminator};
use crate::op::{Axis, ConstVal, Imm};
use std::collections::HashMap;
use std::fmt::Write;

/// Print the immediate of an instruction, without the angle brackets.
pub fn format_imm(imm: &Imm) -> Option<String> {
    Some(match imm {
        Imm::None => return None,
        Imm::Const(ConstVal::F32(x)) => format_f32(*x),
        Imm::Const(ConstVal::I64(x)) => x.to_string(),
        Imm::Const(ConstVal::Bool(b)) => b.to_string(),
        Imm::Axis(Axis::All) => "all".into(),
        Imm::Axis(Axis::Index(i)) => i.to_string(),
        Imm::DType(d) => d.name().into(),
        Imm::Dim(d) => d.to_string(),
        Imm::Shape(s) => {
            let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
            format!("[{}]", dims.join(","))
        }
    })
}

/// The shortest decimal that parses back to the same f32 (`NaN`, `inf`, `-inf` included).
fn format_f32(x: f32) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x:?}")
    }
}

struct Names {
    values: HashMap<Value, usize>,
    blocks: HashMap<Block, usize>,
}

impl Names {
    fn new(f: &Function) -> Names {
        let mut values = HashMap::new();
        let mut blocks = HashMap::new();
        for (bi, &b) in f.layout.iter().enumerate() {
            blocks.insert(b, bi);
            for &p in &f.blocks[b].params {
                let n = values.len();
                values.entry(p).or_insert(n);
            }
            for &i in &f.blocks[b].insts {
                let n = values.len();
                values.entry(f.insts[i].result).or_insert(n);
            }
        }
        Names { values, blocks }
    }
    fn v(&self, v: Value) -> String {
        match self.values.get(&v) {
            Some(n) => format!("v{n}"),
            None => format!("?{v}"),
        }
    }
    fn b(&self, b: Block) -> String {
        match self.blocks.get(&b) {
            Some(n) => format!("block{n}"),
            None => format!("?{b}"),
        }
    }
    fn call(&self, c: &BlockCall) -> String {
        if c.args.is_empty() {
            self.b(c.block)
        } else {
            let args: Vec<String> = c.args.iter().map(|a| self.v(*a)).collect();
            format!("{}({})", self.b(c.block), args.join(", "))
        }
    }
}

/// Print `f` in the canonical text form.
pub fn print_function(f: &Function) -> String {
    let names = Names::new(f);
    let mut out = String::new();
    let params: Vec<String> = match f.layout.first() {
        Some(&e) => f.blocks[e]
            .params
            .iter()
            .map(|p| f.ty(*p).to_string())
            .collect(),
        None => Vec::new(),
    };
    let results: Vec<String> = f.results.iter().map(|t| t.to_string()).collect();
    let _ = writeln!(
        out,
        "function {}({}) -> {} {{",
        f.name,
        params.join(", "),
        results.join(", ")
    );
    for &b in &f.layout {
        let data = &f.blocks[b];
        let ps: Vec<String> = data
            .params
            .iter()
            .map(|p| format!("{}: {}", names.v(*p), f.ty(*p)))
            .collect();
        if ps.is_empty() {
            let _ = writeln!(out, "{}:", names.b(b));
        } else {
            let _ = writeln!(out, "{}({}):", names.b(b), ps.join(", "));
        }
        for &i in &data.insts {
            let inst = &f.insts[i];
            let mut line = format!("    {} = {}", names.v(inst.result), inst.op.name());
            if let Some(imm) = format_imm(&inst.imm) {
                let _ = write!(line, "<{imm}>");
            }
            let args: Vec<String> = inst.args.iter().map(|a| names.v(*a)).collect();
            if !args.is_empty() {
                let _ = write!(line, " {}", args.join(", "));
            }
            let _ = writeln!(out, "{line} : {}", f.ty(inst.result));
        }
        let term = match &data.term {
            Terminator::Return(vs) => {
                let vs: Vec<String> = vs.iter().map(|v| names.v(*v)).collect();
                format!("return {}", vs.join(", "))
            }
            Terminator::Jump(c) => format!("jump {}", names.call(c)),
            Terminator::Brif(c, a, e) => {
                format!("brif {}, {}, {}", names.v(*c), names.call(a), names.call(e))
            }
            Terminator::Trap(t) => format!("trap {t}"),
        };
        let _ = writeln!(out, "    {term}");
    }
    out.push_str("}\n");
    out
}
