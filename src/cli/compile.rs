//! `ncpc compile`: genome -> IR, optimized IR, Graphviz, AMM, DAML or pass statistics.

use super::CliError;
use super::input::{read_source, stem, write_output};
use crate::formats::{self, CompileOptions, Format, Mode, amm, daml_emit};
use clap::{Args, ValueEnum};
use ncp_ir::passes::simplify::FastMath;
use ncp_ir::passes::{OptOptions, canonical_hash, optimize};
use ncp_ir::text::print_function;
use std::fmt::Write;
use std::path::PathBuf;

/// What `compile` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The IR as compiled.
    Ir,
    /// The IR after the optimization pipeline.
    IrOpt,
    /// The optimized IR as a Graphviz graph.
    Dot,
    /// An AMM program.
    Amm,
    /// A DAML expression.
    Daml,
    /// What each pass removed or rewrote, op counts, the canonical hash.
    Stats,
    /// The optimized gradient IR: `(y_pred, y_true) -> (loss, d loss / d y_pred)`.
    GradIr,
    /// The Cranelift IR of the JIT kernel (loss and gradient).
    Clif,
    /// The machine code of the JIT kernel.
    Asm,
    /// The CUDA C of its population kernel (loss share and dL/dy_pred per row, for
    /// `--classes` classes), as NVRTC compiles it.
    Cuda,
    /// The WGSL of its population kernel (the same kernel as `cuda`), as wgpu compiles it.
    Wgsl,
}

/// Arguments of `ncpc compile`.
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// Genome file, or `-` for stdin.
    pub genome: PathBuf,
    /// How the genome is read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// What to write.
    #[arg(long, value_enum, default_value = "ir")]
    pub emit: Emit,
    /// Allow rewrites that assume no NaN or infinity (x*0 -> 0, x-x -> 0, ...).
    #[arg(long)]
    pub fast_math: bool,
    /// The JIT kernel's tier for `--emit clif|asm`: quick (every loss's first kernel) or hot
    /// (f32x4 lanes and inlined math, what training switches to).
    #[arg(long, value_enum, default_value = "quick")]
    pub tier: crate::jit::Tier,
    /// Classes compiled into `--emit cuda|wgsl`'s kernel.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// How a genome file is read; every command that reads one flattens this.
#[derive(Args, Debug, Clone, Copy)]
pub struct ReadArgs {
    /// Input format (detected by default).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// compat reproduces the public interpreter; strict rejects what it papers over.
    #[arg(long, value_enum, default_value = "compat")]
    pub mode: Mode,
}

impl ReadArgs {
    /// Compile options for the genome file `genome` (its stem names the function).
    pub fn options(self, genome: &std::path::Path) -> CompileOptions {
        CompileOptions {
            format: self.format.format(),
            mode: self.mode,
            name: stem(genome),
            ..CompileOptions::default()
        }
    }
}

/// `--format`: a format or auto-detection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect from the content.
    Auto,
    /// AMM register program.
    Amm,
    /// DAML expression tree.
    Daml,
    /// HAZ gene arrays.
    Haz,
    /// ncpc text IR.
    Ir,
}

impl FormatArg {
    /// The format, `None` for auto.
    pub fn format(self) -> Option<Format> {
        match self {
            FormatArg::Auto => None,
            FormatArg::Amm => Some(Format::Amm),
            FormatArg::Daml => Some(Format::Daml),
            FormatArg::Haz => Some(Format::Haz),
            FormatArg::Ir => Some(Format::Ir),
        }
    }
}

/// Run `ncpc compile`.
pub fn run(a: CompileArgs) -> Result<(), CliError> {
    let text = read_source(&a.genome)?;
    let opts = a.read.options(&a.genome);
    let compiled = formats::compile(&text, &opts)?;
    let oo = OptOptions {
        fast_math: FastMath {
            no_nans_no_infs: a.fast_math,
        },
        verify_each: true,
    };
    let mut f = compiled.func.clone();
    let out = match a.emit {
        Emit::Ir => print_function(&f),
        Emit::IrOpt => {
            optimize(&mut f, oo)?;
            print_function(&f)
        }
        Emit::Dot => {
            optimize(&mut f, oo)?;
            crate::cli::compile::dot(&f)
        }
        Emit::Amm => {
            optimize(&mut f, oo)?;
            let p = amm::emit(&f)?;
            amm::to_json(&p) + "\n"
        }
        Emit::Daml => {
            optimize(&mut f, oo)?;
            daml_emit::emit(&f)? + "\n"
        }
        Emit::GradIr => {
            optimize(&mut f, oo)?;
            if !f.is_straight_line() {
                return Err(anyhow::anyhow!("the genome has control flow: its gradient IR exists per execution path (ncpc run differentiates the path taken)").into());
            }
            let mut g = ncp_ir::passes::gradient(&f)?;
            optimize(&mut g.func, oo)?;
            print_function(&g.func)
        }
        Emit::Cuda | Emit::Wgsl => {
            optimize(&mut f, oo)?;
            if !f.is_straight_line() {
                return Err(anyhow::anyhow!(
                    "the genome has control flow: the population kernels take straight-line losses"
                )
                .into());
            }
            let mut g = ncp_ir::passes::gradient(&f)?;
            optimize(&mut g.func, oo)?;
            let dialect = if a.emit == Emit::Cuda {
                crate::gpu::emit::Dialect::Cuda
            } else {
                crate::gpu::emit::Dialect::Wgsl
            };
            crate::gpu::emit::population(&[g.func], a.classes, dialect)
                .map_err(anyhow::Error::from)?
                .source
        }
        Emit::Clif | Emit::Asm => {
            optimize(&mut f, oo)?;
            let mut jit = crate::jit::Jit::new()?;
            jit.keep_listings = true;
            jit.tier = a.tier;
            let Some(cl) = jit.compile_loss(&f)? else {
                if crate::jit::paths::dynamic_branches(&f) {
                    return Err(anyhow::anyhow!(
                        "the JIT has no single kernel for this genome: its branches depend on \
                         the data, so it compiles the path each input takes, with the branches \
                         as guards (docs/jit.md, \"What it compiles\"); `ncpc run --backend jit` \
                         runs one"
                    )
                    .into());
                }
                let why = ncp_ir::passes::gradient(&f)
                    .map_err(anyhow::Error::from)
                    .and_then(|g| crate::jit::Jit::check(&g.func).map_err(anyhow::Error::from));
                return Err(anyhow::anyhow!(
                    "the JIT does not compile this genome: {}",
                    why.err()
                        .map_or("it has control flow or always faults".to_string(), |e| e
                            .to_string())
                )
                .into());
            };
            let k = jit.kernel_of(&cl);
            if a.emit == Emit::Clif {
                k.clif.clone()
            } else {
                k.asm.clone()
            }
        }
        Emit::Stats => {
            let before = f.inst_count();
            let stats = optimize(&mut f, oo)?;
            let mut s = String::new();
            let _ = writeln!(s, "format: {}", compiled.format);
            let _ = writeln!(s, "ops before: {before}");
            let _ = writeln!(s, "ops after: {}", f.inst_count());
            let _ = writeln!(s, "blocks: {}", f.layout.len());
            for p in &stats {
                let _ = writeln!(s, "pass {}: {} changed", p.pass, p.changes);
            }
            let _ = writeln!(s, "hash: {}", canonical_hash(&f));
            let _ = writeln!(s, "compat notes: {}", compiled.notes.len());
            for n in &compiled.notes {
                let _ = writeln!(s, "  {n}");
            }
            s
        }
    };
    write_output(a.output.as_ref(), &out)
}

/// A Graphviz rendering: one node per instruction, edges from operands.
pub fn dot(f: &ncp_ir::Function) -> String {
    let text = print_function(f);
    let mut s = String::from("digraph loss {\n  node [shape=box, fontname=monospace];\n");
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('v') && l.contains(" = ") {
            let (def, rhs) = l.split_once(" = ").unwrap_or((l, ""));
            let _ = writeln!(s, "  {def} [label=\"{}\"];", l.replace('"', "'"));
            let ops = rhs.split(':').next().unwrap_or("");
            for tok in ops.split([' ', ',']).filter(|t| {
                t.starts_with('v') && t[1..].chars().all(|c| c.is_ascii_digit()) && t.len() > 1
            }) {
                let _ = writeln!(s, "  {tok} -> {def};");
            }
        } else if l.starts_with("block") {
            let _ = writeln!(s, "  // line {i}: {l}");
        } else if let Some(r) = l.strip_prefix("return ") {
            for v in r.split(", ") {
                let _ = writeln!(
                    s,
                    "  {v} -> ret_{i};\n  ret_{i} [label=\"return\", shape=oval];"
                );
            }
        }
    }
    for (bi, b) in f.layout.iter().enumerate() {
        for p in f.blocks[*b].params.iter().enumerate() {
            let _ = p;
        }
        let _ = bi;
    }
    s.push_str("}\n");
    s
}
