//! Parser of the text form. Errors carry the 1-based line and column.

use crate::IrError;
use crate::entities::{Block, Value};
use crate::function::{BlockCall, Function, Terminator, TrapCode};
use crate::op::{Axis, ConstVal, Imm, ImmKind, Opcode, infer_type};
use crate::types::{DType, Dim, Shape, Type};
use std::collections::HashMap;

/// A cursor over one line.
struct Cur<'a> {
    line_no: usize,
    text: &'a str,
    pos: usize,
}

type PResult<T> = Result<T, IrError>;

impl<'a> Cur<'a> {
    fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        self.err_at(self.pos, msg)
    }
    fn err_at<T>(&self, pos: usize, msg: impl Into<String>) -> PResult<T> {
        let col = self.text[..pos.min(self.text.len())].chars().count() + 1;
        Err(IrError::Parse {
            line: self.line_no,
            col,
            msg: msg.into(),
        })
    }
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }
    fn ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }
    fn at_end(&mut self) -> bool {
        self.ws();
        self.rest().is_empty()
    }
    fn eat(&mut self, s: &str) -> bool {
        self.ws();
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, s: &str) -> PResult<()> {
        if self.eat(s) {
            Ok(())
        } else {
            let found = self
                .rest()
                .chars()
                .next()
                .map(|c| format!("`{c}`"))
                .unwrap_or("end of line".into());
            self.err(format!("expected `{s}`, found {found}"))
        }
    }
    /// An identifier: letters, digits, `_`, `.`, `-` (not leading `-`).
    fn ident(&mut self) -> PResult<&'a str> {
        self.ws();
        let r = self.rest();
        let n = r
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_alphanumeric() || *c == '_' || (*i > 0 && (*c == '.' || *c == '-')))
            })
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        if n == 0 {
            return self.err("expected a name");
        }
        self.pos += n;
        Ok(&r[..n])
    }
    fn finish(&mut self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            self.err(format!("unexpected `{}`", self.rest()))
        }
    }
}

fn parse_dim(cur: &Cur, pos: usize, s: &str) -> PResult<Dim> {
    match s {
        "B" => Ok(Dim::B),
        "C" => Ok(Dim::C),
        _ => match s.parse::<u32>() {
            Ok(n) => Ok(Dim::Fixed(n)),
            Err(_) => cur.err_at(pos, format!("`{s}` is not a dim (B, C or a size)")),
        },
    }
}

fn parse_shape_text(cur: &Cur, pos: usize, s: &str) -> PResult<Shape> {
    let inner = s.trim();
    let Some(inner) = inner.strip_prefix('[').and_then(|x| x.strip_suffix(']')) else {
        return cur.err_at(pos, format!("`{s}` is not a shape like [B,C]"));
    };
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|d| parse_dim(cur, pos, d.trim()))
        .collect()
}

fn parse_type(cur: &mut Cur) -> PResult<Type> {
    let pos = {
        cur.ws();
        cur.pos
    };
    let name = cur.ident()?;
    let Some(dtype) = DType::from_name(name) else {
        return cur.err_at(pos, format!("`{name}` is not a type (f32, i64, bool)"));
    };
    let mut shape = Vec::new();
    if cur.rest().starts_with('[') {
        let start = cur.pos;
        let Some(end) = cur.rest().find(']') else {
            return cur.err("unclosed `[`");
        };
        let text = &cur.text[start..start + end + 1];
        shape = parse_shape_text(cur, start, text)?;
        cur.pos = start + end + 1;
    }
    Ok(Type::new(dtype, shape))
}

/// A parsed but unresolved line.
enum Stmt<'a> {
    Inst {
        result: (&'a str, usize),
        op: Opcode,
        imm: (&'a str, usize),
        args: Vec<(&'a str, usize)>,
        ty: Type,
    },
    Term(TermAst<'a>),
}

enum TermAst<'a> {
    Return(Vec<(&'a str, usize)>),
    Jump(CallAst<'a>),
    Brif((&'a str, usize), CallAst<'a>, CallAst<'a>),
    Trap(TrapCode),
}

struct CallAst<'a> {
    block: (&'a str, usize),
    args: Vec<(&'a str, usize)>,
}

struct BlockAst<'a> {
    name: &'a str,
    line: usize,
    params: Vec<(&'a str, usize, Type)>,
    stmts: Vec<(usize, Stmt<'a>)>,
}

fn value_name<'a>(cur: &mut Cur<'a>) -> PResult<(&'a str, usize)> {
    cur.ws();
    let pos = cur.pos;
    let n = cur.ident()?;
    if !n.starts_with('v') || n[1..].parse::<u32>().is_err() {
        return cur.err_at(pos, format!("`{n}` is not a value name like v3"));
    }
    Ok((n, pos))
}

fn value_list<'a>(cur: &mut Cur<'a>) -> PResult<Vec<(&'a str, usize)>> {
    let mut out = vec![value_name(cur)?];
    while cur.eat(",") {
        out.push(value_name(cur)?);
    }
    Ok(out)
}

fn block_call<'a>(cur: &mut Cur<'a>) -> PResult<CallAst<'a>> {
    cur.ws();
    let pos = cur.pos;
    let name = cur.ident()?;
    let mut args = Vec::new();
    if cur.rest().starts_with('(') {
        cur.expect("(")?;
        if !cur.eat(")") {
            args = value_list(cur)?;
            cur.expect(")")?;
        }
    }
    Ok(CallAst {
        block: (name, pos),
        args,
    })
}

fn parse_term<'a>(cur: &mut Cur<'a>, kw: &str) -> PResult<TermAst<'a>> {
    Ok(match kw {
        "return" => TermAst::Return(value_list(cur)?),
        "jump" => TermAst::Jump(block_call(cur)?),
        "brif" => {
            let c = value_name(cur)?;
            cur.expect(",")?;
            let a = block_call(cur)?;
            cur.expect(",")?;
            let b = block_call(cur)?;
            TermAst::Brif(c, a, b)
        }
        _ => {
            cur.ws();
            let pos = cur.pos;
            let name = cur.ident()?;
            match TrapCode::from_name(name) {
                Some(t) => TermAst::Trap(t),
                None => return cur.err_at(pos, format!("`{name}` is not a trap code")),
            }
        }
    })
}

fn parse_inst<'a>(cur: &mut Cur<'a>, result: (&'a str, usize)) -> PResult<Stmt<'a>> {
    cur.ws();
    let op_pos = cur.pos;
    let op_name = cur.ident()?;
    let Some(op) = Opcode::from_name(op_name) else {
        return cur.err_at(op_pos, format!("unknown op `{op_name}`"));
    };
    let mut imm = ("", cur.pos);
    if cur.rest().starts_with('<') {
        let start = cur.pos + 1;
        let Some(end) = cur.rest().find('>') else {
            return cur.err("unclosed `<`");
        };
        imm = (cur.text[start..cur.pos + end].trim(), start);
        cur.pos += end + 1;
    }
    let mut args = Vec::new();
    cur.ws();
    if !cur.rest().starts_with(':') {
        args = value_list(cur)?;
    }
    cur.expect(":")?;
    let ty = parse_type(cur)?;
    cur.finish()?;
    Ok(Stmt::Inst {
        result,
        op,
        imm,
        args,
        ty,
    })
}

fn parse_imm(cur: &Cur, op: Opcode, (text, pos): (&str, usize), ty: &Type) -> PResult<Imm> {
    let kind = op.info().imm;
    if kind == ImmKind::None {
        return if text.is_empty() {
            Ok(Imm::None)
        } else {
            cur.err_at(pos, format!("`{}` takes no immediate", op.name()))
        };
    }
    if text.is_empty() {
        return cur.err_at(pos, format!("`{}` needs an immediate `<...>`", op.name()));
    }
    let bad = |what: &str| cur.err_at(pos, format!("`{text}` is not {what}"));
    Ok(match kind {
        ImmKind::None => unreachable!(),
        ImmKind::Const => match ty.dtype {
            DType::F32 => match text.parse::<f32>() {
                Ok(x) => Imm::Const(ConstVal::F32(x)),
                Err(_) => return bad("an f32 constant"),
            },
            DType::I64 => match text.parse::<i64>() {
                Ok(x) => Imm::Const(ConstVal::I64(x)),
                Err(_) => return bad("an i64 constant"),
            },
            DType::Bool => match text {
                "true" => Imm::Const(ConstVal::Bool(true)),
                "false" => Imm::Const(ConstVal::Bool(false)),
                _ => return bad("a bool constant"),
            },
        },
        ImmKind::Axis => match text {
            "all" => Imm::Axis(Axis::All),
            _ => match text.parse::<u32>() {
                Ok(i) => Imm::Axis(Axis::Index(i)),
                Err(_) => return bad("an axis (a number or `all`)"),
            },
        },
        ImmKind::DType => match DType::from_name(text) {
            Some(d) => Imm::DType(d),
            None => return bad("a dtype"),
        },
        ImmKind::Dim => Imm::Dim(parse_dim(cur, pos, text)?),
        ImmKind::Shape => Imm::Shape(parse_shape_text(cur, pos, text)?),
    })
}

/// Parse one function from the text form. The result is type-checked instruction by
/// instruction (the annotation after `:` must equal the inferred type); run the verifier for
/// the whole-function invariants (dominance, block arguments).
pub fn parse_function(src: &str) -> Result<Function, IrError> {
    let lines: Vec<(usize, &str)> = src
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.find(';').map_or(l, |c| &l[..c])))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let Some(&(hl, header)) = lines.first() else {
        return Err(IrError::Parse {
            line: 1,
            col: 1,
            msg: "empty input: expected `function NAME(...) -> ... {`".into(),
        });
    };
    let mut cur = Cur {
        line_no: hl,
        text: header,
        pos: 0,
    };
    cur.expect("function")?;
    let name = cur.ident()?.to_string();
    cur.expect("(")?;
    let mut sig_params = Vec::new();
    if !cur.eat(")") {
        loop {
            sig_params.push(parse_type(&mut cur)?);
            if cur.eat(")") {
                break;
            }
            cur.expect(",")?;
        }
    }
    cur.expect("->")?;
    let mut results = vec![parse_type(&mut cur)?];
    while cur.eat(",") {
        results.push(parse_type(&mut cur)?);
    }
    cur.expect("{")?;
    cur.finish()?;

    // Pass 1: split into blocks and statements.
    let mut blocks: Vec<BlockAst> = Vec::new();
    let mut closed = false;
    for &(ln, text) in &lines[1..] {
        let mut cur = Cur {
            line_no: ln,
            text,
            pos: 0,
        };
        if closed {
            return cur.err("text after the closing `}`");
        }
        if cur.eat("}") {
            cur.finish()?;
            closed = true;
            continue;
        }
        cur.ws();
        let start = cur.pos;
        let first = cur.ident()?;
        if first.starts_with("block")
            && (cur.rest().trim_start().starts_with('(')
                || cur.rest().trim_start().starts_with(':'))
        {
            let mut params = Vec::new();
            if cur.eat("(") && !cur.eat(")") {
                loop {
                    let (n, p) = value_name(&mut cur)?;
                    cur.expect(":")?;
                    let t = parse_type(&mut cur)?;
                    params.push((n, p, t));
                    if cur.eat(")") {
                        break;
                    }
                    cur.expect(",")?;
                }
            }
            cur.expect(":")?;
            cur.finish()?;
            blocks.push(BlockAst {
                name: first,
                line: ln,
                params,
                stmts: Vec::new(),
            });
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            return cur.err_at(
                start,
                "expected a block header like `block0(v0: f32[B,C], v1: f32[B,C]):`",
            );
        };
        let stmt = match first {
            "return" | "jump" | "brif" | "trap" => {
                let t = parse_term(&mut cur, first)?;
                cur.finish()?;
                Stmt::Term(t)
            }
            _ => {
                cur.pos = start;
                let result = value_name(&mut cur)?;
                cur.expect("=")?;
                parse_inst(&mut cur, result)?
            }
        };
        block.stmts.push((ln, stmt));
    }
    if !closed {
        let last = lines.last().map_or(1, |l| l.0);
        return Err(IrError::Parse {
            line: last,
            col: 1,
            msg: "missing closing `}`".into(),
        });
    }
    if blocks.is_empty() {
        return Err(IrError::Parse {
            line: hl,
            col: 1,
            msg: "a function needs at least one block".into(),
        });
    }

    // Pass 2: create blocks, parameters and instruction results.
    let mut f = Function {
        name,
        insts: Default::default(),
        values: Default::default(),
        blocks: Default::default(),
        layout: Vec::new(),
        results,
    };
    let mut block_ids: HashMap<&str, Block> = HashMap::new();
    let mut values: HashMap<&str, Value> = HashMap::new();
    let mut inst_of_stmt: Vec<Vec<Option<Value>>> = Vec::new();
    for b in &blocks {
        let cur = Cur {
            line_no: b.line,
            text: "",
            pos: 0,
        };
        let id = f.add_block();
        if block_ids.insert(b.name, id).is_some() {
            return cur.err(format!("block `{}` is defined twice", b.name));
        }
        for (n, p, t) in &b.params {
            let v = f.add_block_param(id, t.clone());
            if values.insert(n, v).is_some() {
                let lt = lines.iter().find(|l| l.0 == b.line).map_or("", |l| l.1);
                return Cur {
                    line_no: b.line,
                    text: lt,
                    pos: 0,
                }
                .err_at(*p, format!("value `{n}` is defined twice"));
            }
        }
        let mut ids = Vec::new();
        for (ln, s) in &b.stmts {
            if let Stmt::Inst {
                result: (n, p),
                op,
                ty,
                ..
            } = s
            {
                let v = f.push_inst(id, *op, Imm::None, Vec::new(), ty.clone());
                if values.insert(n, v).is_some() {
                    let lt = lines.iter().find(|l| l.0 == *ln).map_or("", |l| l.1);
                    return Cur {
                        line_no: *ln,
                        text: lt,
                        pos: 0,
                    }
                    .err_at(*p, format!("value `{n}` is defined twice"));
                }
                ids.push(Some(v));
            } else {
                ids.push(None);
            }
        }
        inst_of_stmt.push(ids);
    }
    if let Some(first) = f.layout.first() {
        let got: Vec<Type> = f.blocks[*first]
            .params
            .iter()
            .map(|p| f.ty(*p).clone())
            .collect();
        if got != sig_params {
            return Err(IrError::Parse {
                line: blocks[0].line,
                col: 1,
                msg: "the entry block's parameters differ from the function signature".into(),
            });
        }
    }

    // Pass 3: resolve operands, immediates, terminators; type-check each instruction.
    for (bi, b) in blocks.iter().enumerate() {
        let bid = block_ids[b.name];
        let mut terminated = false;
        for (si, (ln, s)) in b.stmts.iter().enumerate() {
            let text = lines.iter().find(|l| l.0 == *ln).map_or("", |l| l.1);
            let cur = Cur {
                line_no: *ln,
                text,
                pos: 0,
            };
            if terminated {
                return cur.err("instruction after the block's terminator");
            }
            let look = |(n, p): (&str, usize)| -> PResult<Value> {
                values
                    .get(n)
                    .copied()
                    .map_or_else(|| cur.err_at(p, format!("value `{n}` is not defined")), Ok)
            };
            let look_block = |(n, p): (&str, usize)| -> PResult<Block> {
                block_ids
                    .get(n)
                    .copied()
                    .map_or_else(|| cur.err_at(p, format!("block `{n}` is not defined")), Ok)
            };
            let call = |c: &CallAst| -> PResult<BlockCall> {
                Ok(BlockCall {
                    block: look_block(c.block)?,
                    args: c.args.iter().map(|a| look(*a)).collect::<PResult<_>>()?,
                })
            };
            match s {
                Stmt::Inst {
                    op,
                    imm,
                    args,
                    ty,
                    result,
                } => {
                    let v = inst_of_stmt[bi][si].expect("instruction value created in pass 2");
                    let args: Vec<Value> = args.iter().map(|a| look(*a)).collect::<PResult<_>>()?;
                    let imm = parse_imm(&cur, *op, *imm, ty)?;
                    let tys: Vec<&Type> = args.iter().map(|a| f.ty(*a)).collect();
                    match infer_type(*op, &imm, &tys) {
                        Ok(t) if t == *ty => {}
                        Ok(t) => {
                            return cur.err_at(
                                result.1,
                                format!(
                                    "`{}` is annotated {ty} but `{}` gives {t}",
                                    result.0,
                                    op.name()
                                ),
                            );
                        }
                        Err(e) => return cur.err_at(result.1, e),
                    }
                    let crate::function::ValueDef::Inst(i) = f.values[v].def else {
                        unreachable!()
                    };
                    f.insts[i].args = args;
                    f.insts[i].imm = imm;
                }
                Stmt::Term(t) => {
                    let term = match t {
                        TermAst::Return(vs) => {
                            Terminator::Return(vs.iter().map(|a| look(*a)).collect::<PResult<_>>()?)
                        }
                        TermAst::Jump(c) => Terminator::Jump(call(c)?),
                        TermAst::Brif(c, a, e) => Terminator::Brif(look(*c)?, call(a)?, call(e)?),
                        TermAst::Trap(code) => Terminator::Trap(*code),
                    };
                    f.set_term(bid, term);
                    terminated = true;
                }
            }
        }
        if !terminated {
            return Err(IrError::Parse {
                line: b.line,
                col: 1,
                msg: format!("block `{}` has no terminator", b.name),
            });
        }
    }
    Ok(f)
}
