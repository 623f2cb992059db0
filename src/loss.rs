//! Evaluating a loss: compile, optimize, run the reference interpreter, differentiate.
//! This is the `ncpc run` contract every backend is tested against.

use crate::formats::{self, CompileOptions, Format, FormatError};
use ncp_ir::interp::{DEFAULT_FUEL, Outcome, run_traced};
use ncp_ir::passes::{OptOptions, gradient, optimize, trace::specialize};
use ncp_ir::tensor::Tensor;
use ncp_ir::{DimModel, Function, IrError, TrapCode};

/// The loss AMM's loss wrapper returns when a program faults.
pub const FAULT_LOSS: f32 = 1.0;

/// A loss and its gradient on one input pair.
#[derive(Clone, Debug, PartialEq)]
pub struct LossValue {
    /// The scalar loss.
    pub loss: f32,
    /// d loss / d y_pred, `None` when the loss does not depend on y_pred (or faulted).
    pub grad: Option<Vec<Vec<f32>>>,
    /// Why the program faulted, if it did; the loss is then [`FAULT_LOSS`].
    pub fault: Option<TrapCode>,
}

/// Errors of evaluating a loss.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// The genome did not compile.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The inputs do not fit, or the IR failed to run.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// Bad inputs.
    #[error("inputs: {0}")]
    Inputs(String),
    /// The JIT failed.
    #[error(transparent)]
    Jit(crate::jit::JitError),
}

/// Run a compiled loss function on concrete inputs: the loss, and its gradient by the
/// gradient IR (along the path taken when the function has control flow).
pub fn evaluate_function(
    f: &Function,
    y_pred: &Tensor,
    y_true: &Tensor,
    opt: bool,
) -> Result<LossValue, LossError> {
    evaluate_function_with_fuel(f, y_pred, y_true, opt, DEFAULT_FUEL)
}

/// [`evaluate_function`] with at most `fuel` instructions executed by each of the two runs
/// (the loss, then its gradient); running out is an error, for callers that bound the work
/// spent on untrusted genomes.
pub fn evaluate_function_with_fuel(
    f: &Function,
    y_pred: &Tensor,
    y_true: &Tensor,
    opt: bool,
    fuel: u64,
) -> Result<LossValue, LossError> {
    evaluate_function_traced(f, y_pred, y_true, opt, fuel).map(|(v, _)| v)
}

/// [`evaluate_function_with_fuel`], also returning the path the run took (the blocks in
/// order, as [`run_traced`] records it), for callers that compile that path next.
pub fn evaluate_function_traced(
    f: &Function,
    y_pred: &Tensor,
    y_true: &Tensor,
    opt: bool,
    fuel: u64,
) -> Result<(LossValue, Vec<ncp_ir::interp::Step>), LossError> {
    let inputs = [y_pred.clone(), y_true.clone()];
    let (outcome, path) = run_traced(f, &inputs, fuel)?;
    let value = |loss, grad, fault| LossValue { loss, grad, fault };
    let loss = match outcome {
        Outcome::Trap(t) => return Ok((value(FAULT_LOSS, None, Some(t)), path)),
        Outcome::Return(v) => v
            .first()
            .map(|t| t.data[0] as f32)
            .ok_or_else(|| IrError::Eval("no result".into()))?,
    };
    let straight = if f.is_straight_line() {
        f.clone()
    } else {
        specialize(f, &path)?
    };
    let mut g = gradient(&straight)?;
    if !g.has_grad {
        return Ok((value(loss, None, None), path));
    }
    if opt {
        optimize(&mut g.func, OptOptions::default())?;
    }
    let grad = match run_traced(&g.func, &inputs, fuel)?.0 {
        Outcome::Return(v) if v.len() == 2 => Some(v[1].rows_f32()),
        _ => {
            return Err(
                IrError::Grad("the gradient function did not return a gradient".into()).into(),
            );
        }
    };
    Ok((value(loss, grad, None), path))
}

/// Which engine computes a loss.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The reference interpreter.
    Interp,
    /// Cranelift native kernels; functions the JIT does not take run on the interpreter.
    #[default]
    Jit,
}

/// Evaluate with the JIT: the gradient IR compiled to one native kernel. `Ok(None)` when the
/// JIT does not take the function (the caller falls back to the interpreter).
pub fn evaluate_function_jit(
    jit: &mut crate::jit::Jit,
    f: &Function,
    y_pred: &Tensor,
    y_true: &Tensor,
) -> Result<Option<LossValue>, LossError> {
    // Branches on the data: the guarded path these inputs take (its loss is NaN off that
    // path, or when the loss itself is NaN: either way the interpreter answers).
    let guarded = crate::jit::paths::guarded_path(f, y_pred, y_true);
    let Some(cl) = jit
        .compile_loss(guarded.as_ref().unwrap_or(f))
        .map_err(LossError::Jit)?
    else {
        return Ok(None);
    };
    let (b, c) = match y_pred.shape.as_slice() {
        [b, c] if y_true.shape == y_pred.shape => (*b, *c),
        _ => {
            return Err(LossError::Inputs(
                "y_pred and y_true must be matrices of one shape".into(),
            ));
        }
    };
    let mut grad = vec![0f32; jit.kernel_of(&cl).grad_len(b, c)];
    let loss = jit
        .run(&cl, &y_pred.to_f32(), &y_true.to_f32(), b, c, &mut grad)
        .map_err(LossError::Jit)?;
    if guarded.is_some() && loss.is_nan() {
        return Ok(None);
    }
    let grad = cl
        .has_grad
        .then(|| grad.chunks(c).map(|r| r.to_vec()).collect());
    Ok(Some(LossValue {
        loss,
        grad,
        fault: None,
    }))
}

/// Evaluate with the chosen backend; the JIT falls back to the interpreter for what it does
/// not compile.
pub fn evaluate_with(
    backend: Backend,
    jit: Option<&mut crate::jit::Jit>,
    f: &Function,
    y_pred: &Tensor,
    y_true: &Tensor,
    opt: bool,
) -> Result<LossValue, LossError> {
    if let (Backend::Jit, Some(jit)) = (backend, jit)
        && let Some(v) = evaluate_function_jit(jit, f, y_pred, y_true)?
    {
        return Ok(v);
    }
    evaluate_function(f, y_pred, y_true, opt)
}

/// Compile genome text for these inputs (concrete dims when the inputs break the symbolic
/// assumptions), optionally optimize, and evaluate.
pub fn evaluate_genome(
    text: &str,
    opts: &CompileOptions,
    y_pred: &[Vec<f32>],
    y_true: &[Vec<f32>],
    opt: bool,
) -> Result<LossValue, LossError> {
    evaluate_genome_with(
        Backend::Interp,
        crate::jit::MathMode::Exact,
        text,
        opts,
        y_pred,
        y_true,
        opt,
    )
    .map(|(v, _)| v)
}

/// Compile genome text for inputs of shape `[b, c]`: symbolic dims where the inputs meet
/// the IR's assumptions (B != C, both at least 2), concrete ones otherwise (and for HAZ
/// memory slots whose size meets B or C); optimized when `opt`.
pub fn compile_for_inputs(
    text: &str,
    opts: &CompileOptions,
    b: usize,
    c: usize,
    opt: bool,
) -> Result<Function, LossError> {
    let mut o = opts.clone();
    let format = match o.format {
        Some(f) => f,
        None => formats::detect(text)?,
    };
    o.format = Some(format);
    if format != Format::Ir {
        o.dims = DimModel::for_inputs(b, c);
    }
    let mut f = match formats::compile(text, &o) {
        Ok(c) => c.func,
        Err(e) if formats::haz::requires_concrete_dims(&e) && o.dims == DimModel::Symbolic => {
            o.dims = DimModel::Concrete {
                b: b as u32,
                c: c as u32,
            };
            formats::compile(text, &o)?.func
        }
        Err(e) => return Err(e.into()),
    };
    if opt {
        optimize(&mut f, OptOptions::default())?;
    }
    Ok(f)
}

/// [`evaluate_genome`] with a backend choice; also says which backend computed the result
/// (the JIT falls back to the interpreter for what it does not compile).
pub fn evaluate_genome_with(
    backend: Backend,
    math: crate::jit::MathMode,
    text: &str,
    opts: &CompileOptions,
    y_pred: &[Vec<f32>],
    y_true: &[Vec<f32>],
    opt: bool,
) -> Result<(LossValue, Backend), LossError> {
    let yp = Tensor::from_rows(y_pred).ok_or_else(|| {
        LossError::Inputs("`y_pred` is not a non-empty rectangular matrix".into())
    })?;
    let yt = Tensor::from_rows(y_true).ok_or_else(|| {
        LossError::Inputs("`y_true` is not a non-empty rectangular matrix".into())
    })?;
    if yp.shape != yt.shape {
        return Err(LossError::Inputs(format!(
            "`y_pred` is {:?} but `y_true` is {:?}; they must have one shape",
            yp.shape, yt.shape
        )));
    }
    let f = compile_for_inputs(text, opts, yp.shape[0], yp.shape[1], opt)?;
    if backend == Backend::Jit {
        // The interpreter is the oracle: should the JIT fail on a function it accepted (a bug
        // in ncpc), say so and answer with the interpreter rather than fail the user.
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut jit = crate::jit::Jit::with_math(math).map_err(LossError::Jit)?;
            evaluate_function_jit(&mut jit, &f, &yp, &yt)
        }));
        match attempt {
            Ok(Ok(Some(v))) => return Ok((v, Backend::Jit)),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => eprintln!("ncpc: warning: the JIT failed ({e}); using the interpreter"),
            Err(_) => {
                eprintln!("ncpc: warning: the JIT failed (internal error); using the interpreter")
            }
        }
    }
    Ok((evaluate_function(&f, &yp, &yt, opt)?, Backend::Interp))
}
