#!/usr/bin/env python3
"""Build the AMM and DAML test corpora and their reference values.

The reference values come from the public code itself, imported (never copied)
from scratch checkouts whose paths are given in environment variables:

    AMM_REPO   checkout of Hivetensor/AutoML-Miner       (automl_client/...)
    DAML_REPO  checkout of Hivetrain/DistributedAutoML    (dml/...)

Usage (from anywhere; paths are resolved against this file):

    AMM_REPO=/path/amm DAML_REPO=/path/daml python tests/reference/gen_amm_daml.py

It rewrites, deterministically:

    tests/corpus/amm/*.json        AMM genomes (JSON list of instructions)
    tests/corpus/daml/*.json       DAML gene files (expression + hotkey)
    tests/reference/amm/*.json     reference losses and gradients
    tests/reference/daml/*.json

See tests/reference/README.md for the conventions.
"""

import inspect
import json
import logging
import math
import os
import random
import re
import sys
import types
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
CORPUS = {"amm": ROOT / "tests" / "corpus" / "amm", "daml": ROOT / "tests" / "corpus" / "daml"}
REF = {"amm": ROOT / "tests" / "reference" / "amm", "daml": ROOT / "tests" / "reference" / "daml"}

B, C = 4, 3
HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)  # the AMM interpreter logs every instruction


# ---------------------------------------------------------------------------
# importing the public code


def load_amm():
    repo = os.environ.get("AMM_REPO")
    if not repo or not Path(repo, "automl_client", "genetic", "interpreter.py").is_file():
        sys.exit("AMM_REPO must point at a checkout of Hivetensor/AutoML-Miner")
    sys.path.insert(0, str(Path(repo).resolve()))
    from automl_client.genetic.interpreter import GeneticInterpreter
    from automl_client.components.loss.library import LossLibrary
    return GeneticInterpreter, LossLibrary


def load_daml():
    repo = os.environ.get("DAML_REPO")
    if not repo or not Path(repo, "dml", "ops.py").is_file():
        sys.exit("DAML_REPO must point at a checkout of Hivetrain/DistributedAutoML")
    sys.path.insert(0, str(Path(repo).resolve()))
    # dml/ops.py does `from dml.configs.config import config` only to read
    # config.device; the real module pulls in bittensor.  A stand-in with a CPU
    # device is enough.
    stub = types.ModuleType("dml.configs.config")
    stub.config = types.SimpleNamespace(device="cpu")
    sys.modules["dml.configs.config"] = stub
    from deap import base, creator, gp
    from dml import gene_io, ops
    return ops, gene_io, gp, base, creator


# ---------------------------------------------------------------------------
# inputs and number formatting


def make_cases():
    cases = []
    for k in range(3):
        g = torch.Generator().manual_seed(20250 + k)
        if k == 0:
            yp = torch.randn(B, C, generator=g) * 2.0
        elif k == 1:
            yp = 0.05 + 0.9 * torch.rand(B, C, generator=g)
        else:
            yp = torch.randn(B, C, generator=g) * 10.0
        cls = torch.randint(0, C, (B,), generator=g)
        yt = torch.nn.functional.one_hot(cls, C).to(torch.float32)
        cases.append((yp.to(torch.float32), yt))
    return cases


def num(x):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def nums(t):
    if t.dim() == 0:
        return num(t)
    return [nums(r) for r in t]


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")


def grad_of(loss, y_pred):
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return None
    (g,) = torch.autograd.grad(loss, y_pred, allow_unused=True)
    return None if g is None else nums(g)


# ---------------------------------------------------------------------------
# AMM corpus

# handwritten programs (register numbers: R0..R19 general, 100+k = special k;
# special 0 = y_true, 1 = y_pred)
CROSS_ENTROPY = [
    [100, 1, 1],        # R1 <- y_pred
    [100, 2, 0],        # R2 <- y_true
    [253, 1, 0, 3],     # R3 <- softmax(R1) over the last axis (nn ops: rx, ry, rz)
    [7, 3, 4],          # R4 <- log(max(R3, eps))
    [3, 2, 4, 5],       # R5 <- R2 * R4
    [200, 5, -1, 6],    # R6 <- sum over classes
    [11, 6, 7],         # R7 <- -R6
    [201, 7, 0, 8],     # R8 <- mean over the batch
    [453, 8],
]
BAIKAL = [
    [100, 1, 1],        # R1 <- y_pred
    [100, 2, 0],        # R2 <- y_true
    [253, 1, 0, 3],     # R3 <- p = softmax(R1)
    [7, 3, 4],          # R4 <- log p
    [4, 2, 3, 5],       # R5 <- y / (p + eps)
    [2, 4, 5, 6],       # R6 <- log p - y/p
    [11, 6, 7],         # R7 <- -(log p - y/p)
    [201, 7, -1, 8],    # R8 <- mean over classes
    [201, 8, 0, 9],     # R9 <- mean over batch  (= mean over all B*C elements)
    [453, 9],
]

# small handwritten programs aimed at one interpreter rule each
EDGE = {
    # RETURN without operand: instruction[1] raises IndexError out of execute()
    "edge_bare_return": [[100, 1, 1], [453]],
    # falling off the end: execute() hits its final `return result` unbound
    "edge_no_return": [[100, 1, 1], [10, 1, 2]],
    # endless backward jump: the budget (max(1000, 10*len)) runs out, then as above
    "edge_loop_budget": [[100, 1, 1], [21, 1, 1.01, 1], [450, 1], [453, 1]],
    # a float jump target passes the range check, then program[2.0] raises TypeError
    "edge_float_jump": [[450, 2.0], [100, 1, 1], [453, 1]],
    # a string opcode makes load_program's range test raise TypeError
    "edge_string_opcode": [["ADD", 1, 1, 1], [100, 1, 1], [453, 1]],
    # empty program: execute() raises ValueError
    "edge_empty": [],
    # non-list and empty instructions are skipped (counted as failures)
    "edge_junk_instructions": ["junk", [], [100, 1, 1], [453, 1]],
    # float opcodes compare equal to their integer codes
    "edge_float_opcodes": [[100.0, 1, 1], [10.0, 1, 2], [201.0, 2, -1, 3], [453.0, 3]],
    # LOAD looks the special index up in a dict: 1.0 and true find key 1, false key 0
    "edge_special_keys": [[100, 1, 1.0], [100, 2, True], [100, 3, False], [3, 1, 2, 4], [2, 4, 3, 5], [201, 5, 0, 6], [453, 6]],
    # reading an invalid register gives tensor(0.0); writing one is dropped
    "edge_invalid_registers": [[100, 1, 1], [1, 1, 25, 105], [1, 1, 106, 3], [3, 3, 110, 4], [1, 3, 4, 5], [453, 5]],
    # BATCH_SIZE is an int64 scalar; dividing by it (plus eps) gives float32
    "edge_batch_size_div": [[100, 1, 1], [4, 1, 102, 2], [453, 2]],
    # returning the int64 BATCH_SIZE: decode_to_function multiplies by ones(1) -> shape [1]
    "edge_int_result": [[100, 1, 2], [453, 1]],
    # 0-d int64 * list = Python list repetition; the list result makes decode_to_function fall back
    "edge_int_times_list": [[101, 1, 3], [21, 1, [1.0, 2.0], 2], [453, 2]],
    # a list constant becomes an int64 vector
    "edge_list_const": [[100, 1, 1], [101, 2, [1, 2, 3]], [3, 1, 2, 3], [453, 3]],
    # a bool result: mean() of bool raises in decode_to_function -> fallback tensor(1.0)
    "edge_bool_result": [[100, 1, 1], [400, 1, 100, 2], [453, 2]],
    # mean() of bool raises a RuntimeError subclass inside a reduction: the input passes through
    "edge_reduce_passthrough": [[100, 1, 1], [400, 1, 100, 2], [201, 2, 0, 3], [3, 3, 101, 4], [453, 4]],
    # axis rules: -3 on 2-d wraps to -1; 1.0 on 1-d is out of range -> 0; -3 on 1-d raises IndexError
    "edge_reduce_axes": [[100, 1, 1], [200, 1, -3, 2], [202, 2, 1.0, 3], [203, 2, -3, 4], [1, 3, 4, 5], [453, 5]],
    # a float axis on a 2-d tensor is a TypeError: the instruction fails, R2 stays unset
    "edge_float_axis": [[100, 1, 1], [201, 1, 1.0, 2], [1, 2, 101, 3], [453, 3]],
    # matmul of [4,3]x[4,3] fails with RuntimeError -> elementwise product; [4,3]x[3,4] works
    "edge_matmul": [[100, 1, 1], [100, 2, 0], [102, 1, 2, 3], [103, 1, 4], [102, 1, 4, 5], [201, 5, -1, 6], [201, 6, 0, 7], [201, 3, -1, 8], [201, 8, 0, 9], [1, 7, 9, 10], [453, 10]],
    # nn ops take the destination from params[2] (default 9)
    "edge_nn_default_dest": [[100, 1, 1], [251, 1], [453, 9]],
    # loss op on [3,4] vs [4,3]: not broadcastable, same numel -> y_true reshaped
    "edge_loss_reshape": [[100, 1, 1], [100, 2, 0], [103, 2, 3], [350, 3, 1, 4], [453, 4]],
    # loss op on [4,3] vs [4]: RuntimeError -> tensor(1.0, requires_grad=True)
    "edge_loss_default": [[100, 1, 1], [200, 1, -1, 2], [350, 1, 2, 3], [453, 3]],
    # WHERE with too few operands: a bare `raise` (RuntimeError) fails the instruction
    "edge_where_short": [[100, 1, 1], [409, 1, 101], [453, 9]],
    "edge_where": [[100, 1, 1], [100, 2, 0], [409, 1, 2, 3, 2], [453, 3]],
    # conditional jump over a NEGATE
    "edge_jump_if": [[100, 1, 1], [400, 1, 100, 2], [451, 2, 4], [11, 1, 1], [453, 1]],
    # negative base to a fractional power: NaN loss and gradient
    "edge_pow_nan": [[100, 1, 1], [101, 2, 0.5], [5, 1, 2, 3], [453, 3]],
    # exp clamps at 88; the sum of several exp(88) overflows float32 -> inf mean
    "edge_exp_overflow": [[100, 1, 1], [21, 1, 100.0, 2], [8, 2, 3], [453, 3]],
    # tie rules: maximum(x, x) splits the gradient, max(dim) gives it to one index
    "edge_ties": [[100, 1, 1], [300, 1, 1, 2], [101, 3, 0.0], [3, 1, 3, 4], [202, 4, -1, 5], [201, 5, 0, 6], [201, 2, -1, 7], [201, 7, 0, 8], [1, 6, 8, 9], [453, 9]],
}

# forced endings for some of the "wild" random slots
WILD_ENDINGS = {31: "end", 33: "bare", 35: "none", 37: "random"}

BINARY = [1, 2, 3, 4, 5, 102, 300, 350, 351, 352, 370, 400, 401]
UNARY = [6, 7, 8, 9, 10, 11, 12, 103, 110]
REDUCE = [200, 201, 202, 203, 204, 205, 230]
NN_UNARY = [250, 251, 252, 253, 260]
CONST = [20, 21]
WEIGHTS = (
    [(op, 6) for op in [1, 2, 3, 4]] + [(5, 2)] + [(op, 3) for op in UNARY]
    + [(op, 3) for op in REDUCE[:4]] + [(205, 2), (204, 1), (230, 1)]
    + [(op, 3) for op in NN_UNARY[:4]] + [(260, 1), (300, 2), (102, 2)]
    + [(350, 2), (351, 2), (352, 2), (370, 1), (400, 1), (401, 1), (409, 2)]
    + [(20, 3), (21, 3), (101, 2), (100, 1), (450, 1), (451, 1), (454, 1), (499, 1), (600, 1)]
)


def dest_of(op, params):
    """Register an instruction writes, following the interpreter's defaults."""
    if op in BINARY or op in CONST or op in REDUCE or op in NN_UNARY:
        return params[2] if len(params) >= 3 else 9
    if op in UNARY:
        return params[1] if len(params) >= 2 else 9
    if op in (100, 101):
        return params[0] if params else 1
    if op == 409:
        return params[2] if len(params) >= 4 else None
    return None


def gen_amm_program(rng, wild=False, ending=None):
    """A random AMM program: a LOAD prologue, then instructions of every kind.

    `written` are registers the program has written so far, `tainted` those
    whose value (probably) depends on y_pred; sources and the RETURN register
    are drawn mostly from them so that most programs compute something.
    `wild` raises the rate of malformed instructions (missing or extra
    operands, float opcodes and jump targets, bad endings).  `ending` forces
    the last instruction: "return" (a written register), "random" (RETURN of
    any register), "end" (END), "bare" (RETURN with no operand) or "none".
    """
    p_short, p_long, p_float = (0.2, 0.35, 0.12) if wild else (0.08, 0.16, 0.03)
    n = rng.randint(4, 20)
    prog = []
    written = []
    tainted = set()

    def src():
        r = rng.random()
        if tainted and r < 0.45:
            return rng.choice(sorted(tainted))
        if written and r < 0.75:
            return rng.choice(written)
        if r < 0.85:
            return rng.choice([100, 101, 101, 102, 103, 104, 105, 106])
        if r < 0.97:
            return rng.randint(0, 19)
        return 25

    def dst():
        if rng.random() < 0.03:
            return rng.choice([25, 105])
        return rng.randint(0, 19)

    def const():
        r = rng.random()
        if r < 0.8:
            return round(rng.uniform(-2.0, 2.0), 4)
        if r < 0.95:
            return rng.randint(-3, 5)
        return rng.choice([True, 0.5])

    def fix_arity(params):
        r = rng.random()
        if r < p_short and params:
            return params[: rng.randint(0, len(params) - 1)]
        if r < p_long:
            return params + [rng.randint(0, 19) for _ in range(rng.randint(1, 2))]
        return params

    for i in range(rng.randint(1, 3)):
        special = 1 if i == 0 and rng.random() < 0.85 else rng.choice([1, 0, 0, 2, 3, 4, 5, 6, 1.0, 7])
        d = i + 1 if rng.random() < 0.7 else dst()
        prog.append([100, d, special])
        if 0 <= d < 20:
            written.append(d)
            if special == 1:
                tainted.add(d)
    ops, w = zip(*WEIGHTS)
    while len(prog) < n - 1:
        op = rng.choices(ops, weights=w)[0]
        if wild and rng.random() < 0.08:
            op = rng.choice([450, 451])
        pos = len(prog)
        if op in BINARY:
            params = [src(), src(), dst()]
        elif op in UNARY:
            params = [src(), dst()]
        elif op in REDUCE:
            params = [src(), rng.choice([-1, -1, 0, 0, 1, -2, 2, -3, 5, 1.0]), dst()]
        elif op in NN_UNARY:
            params = [src(), rng.randint(0, 19), dst()]
        elif op in CONST:
            params = [src(), const(), dst()]
        elif op == 101:
            params = [dst(), const()]
        elif op == 100:
            params = [dst(), rng.choice([0, 1, 2, 5])]
        elif op == 409:
            params = [src(), src(), dst(), src()]
        elif op == 450:
            params = [rng.choice([pos + 2, pos + 3, max(0, pos - 2), n + 5, -1])]
            if wild and rng.random() < 0.3:
                params = [float(params[0])]
        elif op == 451:
            params = [src(), rng.choice([pos + 2, max(0, pos - 3), n + 5])]
        elif op == 454:
            params = []
        else:  # unknown opcodes 499, 600
            params = [src(), src(), dst()]
        params = fix_arity(params)
        if rng.random() < p_float and op in (1, 2, 3, 11, 200, 201):
            op = float(op)
        prog.append([op] + params)
        w_reg = dest_of(op, params)
        if isinstance(w_reg, int) and not isinstance(w_reg, bool) and 0 <= w_reg < 20:
            written.append(w_reg)
            if op == 100:
                uses = len(params) > 1 and params[1] == 1
            elif op == 101:
                uses = False
            else:
                uses = any(isinstance(q, int) and (q in tainted or q == 101) for q in params[:-1] or params)
            if uses:
                tainted.add(w_reg)
            else:
                tainted.discard(w_reg)
    r = rng.random()
    if ending is not None:
        r = {"return": 0.0, "random": 0.86, "end": 0.91, "bare": 0.96, "none": None}[ending]
        if r is None:
            return prog
    if r < 0.85 and written:
        pool = sorted(tainted) if tainted and rng.random() < 0.8 else written
        prog.append([453, written[-1] if written[-1] in pool and rng.random() < 0.6 else rng.choice(pool)])
    elif r < 0.9:
        prog.append([453, rng.randint(0, 19)])
    elif r < 0.95:
        prog.append([454])
    else:
        prog.append([453])
    return prog


# ---------------------------------------------------------------------------
# AMM evaluation


def run_amm(GeneticInterpreter, program, yp, yt):
    """Returns (case dict, extra)."""
    # 1) directly through the interpreter: did execute() (or initialize /
    #    load_program) raise?
    it = GeneticInterpreter({"fault_tolerant": True})
    fault = None
    direct = None
    try:
        it.initialize({"y_true": yt, "y_pred": yp.detach().clone()})
        it.load_program(program)
        direct = it.execute()
    except Exception as e:  # noqa: BLE001
        fault = f"{type(e).__name__}: {e}"
    failed = it.execution_stats["failed_instructions"]

    # did decode_to_function fall back to tensor(1.0) for any reason
    # (including after a successful execute, e.g. mean() of an int result)?
    fallback = fault is not None
    if not fallback:
        try:
            r = direct
            if r.numel() != 1:
                r = torch.mean(r)
            _ = r * torch.ones(1)
        except Exception:  # noqa: BLE001
            fallback = True

    # 2) the real entry point
    y_pred = yp.detach().clone().requires_grad_(True)
    loss_fn = GeneticInterpreter.decode_to_function(program)
    loss = loss_fn(yt, y_pred)
    case = {
        "y_pred": nums(yp),
        "y_true": nums(yt),
        "loss": num(loss.reshape(-1)[0]),
        "grad_pred": grad_of(loss, y_pred),
        "fault": fault,
        "loss_shape": list(loss.shape),
        "decode_fallback": fallback,
        "failed_instructions": failed,
    }
    return case


def amm_good(case):
    return (not case["fault"] and not case["decode_fallback"] and isinstance(case["loss"], float)
            and case["grad_pred"] is not None
            and all(isinstance(v, float) for row in case["grad_pred"] for v in row)
            and any(v != 0.0 for row in case["grad_pred"] for v in row))


# ---------------------------------------------------------------------------
# DAML corpus


def round_ephemerals(tree, gp):
    for node in tree:
        if isinstance(type(node), gp.MetaEphemeral):
            node.value = torch.tensor(round(float(node.value), 4))
    return tree


TENSOR_LIT = re.compile(r"tensor\(([-+0-9.e]+)\)")


def to_plain_numbers(expr):
    return TENSOR_LIT.sub(lambda m: repr(float(m.group(1))), expr)


def to_cuda_literals(expr):
    return TENSOR_LIT.sub(lambda m: f"tensor({m.group(1)}, device='cuda:0')", expr)


NUMBER = re.compile(r"(?<![A-Za-z_0-9])[-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?")


def same_expression(text, canonical):
    """Same tree and same float32 constants, whatever the literal style."""
    def split(t):
        t = re.sub(r"tensor\((" + NUMBER.pattern + r")(?:, device='cuda:0')?\)", r"\1", t)
        vals = [float(torch.tensor(float(m))) for m in NUMBER.findall(t)]
        return NUMBER.sub("#", t), vals
    return split(text) == split(canonical)


def eval_context(pset):
    # gp.compile evaluates with pset.context, whose __builtins__ is None, so a
    # printed ephemeral `tensor(0.3790)` cannot be resolved there (TypeError:
    # 'NoneType' object is not subscriptable).  The reference evaluates the same
    # text with `tensor` bound to torch.tensor (float32, CPU).
    ctx = dict(pset.context)
    ctx["tensor"] = lambda v, device=None, **kw: torch.tensor(v)
    return ctx


def daml_compile(expr, pset):
    args = ", ".join(pset.arguments)
    return eval(f"lambda {args}: {expr}", eval_context(pset))


def evolved_baseline_expression(ops):
    src = inspect.getsource(ops.evolved_baseline_loss)
    body = src.split("return", 1)[1].strip()
    return body


def run_daml(func, yp, yt):
    y_pred = yp.detach().clone().requires_grad_(True)
    fault = None
    loss = None
    try:
        out = func(y_pred, yt)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"expression returned {type(out).__name__}, not a tensor")
        loss = out.mean() if out.numel() != 1 else out
    except Exception as e:  # noqa: BLE001
        fault = f"{type(e).__name__}: {e}"
    return {
        "y_pred": nums(yp),
        "y_true": nums(yt),
        "loss": None if loss is None else num(loss.reshape(-1)[0]),
        "grad_pred": None if loss is None else grad_of(loss, y_pred),
        "fault": fault,
        "loss_shape": None if loss is None else list(loss.shape),
    }


def daml_loader_check(gene_io, gp, creator, base, pset, path, yp, yt):
    """What DAML's own loader (gene_io.load_individual_from_json) makes of the file."""
    if not hasattr(creator, "Individual"):
        creator.create("FitnessMax", base.Fitness, weights=(1.0,))
        creator.create("Individual", gp.PrimitiveTree, fitness=creator.FitnessMax)
    tb = base.Toolbox()
    tb.register("compile", gp.compile, pset=pset)
    res = {}
    try:
        ind, func, expr_str, hotkey = gene_io.load_individual_from_json(pset=pset, toolbox=tb, filename=str(path))
        res["loaded_tree"] = str(ind)
        res["nodes"] = len(ind)
        try:
            out = func(yp, yt)
            if isinstance(out, torch.Tensor):
                res["result_case0"] = num(out.float().mean())
            else:
                res["result_case0"] = f"{type(out).__name__}: {out!r}"
        except Exception as e:  # noqa: BLE001
            res["result_case0"] = f"raises {type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"
    return res


# ---------------------------------------------------------------------------


def main():
    torch.set_default_dtype(torch.float32)
    cases = make_cases()
    GeneticInterpreter, LossLibrary = load_amm()
    ops, gene_io, gp, base, creator = load_daml()
    tv = torch.__version__
    for d in list(CORPUS.values()) + list(REF.values()):
        d.mkdir(parents=True, exist_ok=True)

    # ---- AMM genomes
    amm = {
        "mse": LossLibrary.get_function("mse_loss"),
        "mae": LossLibrary.get_function("mae_loss"),
        "bce": LossLibrary.get_function("bce_loss"),
        "cross_entropy": CROSS_ENTROPY,
        "baikal": BAIKAL,
    }
    # 40 random programs.  Slots 0..29 are redrawn until the program gives a
    # finite, y_pred-dependent loss and gradient on all three cases, with a
    # case-0 loss unlike any earlier slot's; slots 30..39 take whatever comes.
    rng = random.Random(424242)
    seen = set()
    for i in range(40):
        for attempt in range(2000):
            prog = gen_amm_program(rng, wild=i >= 30, ending=WILD_ENDINGS.get(i))
            if i >= 30:
                break
            res = [run_amm(GeneticInterpreter, prog, yp, yt) for yp, yt in cases]
            key = round(res[0]["loss"], 5) if isinstance(res[0]["loss"], float) else None
            if all(amm_good(c) for c in res) and key not in seen:
                seen.add(key)
                break
        amm[f"random_{i:03d}"] = prog
    amm.update(EDGE)

    for name, prog in amm.items():
        path = CORPUS["amm"] / f"{name}.json"
        with open(path, "w") as f:
            f.write("[\n" + ",\n".join(" " + json.dumps(ins) for ins in prog) + "\n]\n")
        program = json.loads(path.read_text())  # evaluate what the file says
        ref = {"format": "amm", "genome": f"tests/corpus/amm/{name}.json", "torch": tv,
               "cases": [run_amm(GeneticInterpreter, program, yp, yt) for yp, yt in cases]}
        write_json(REF["amm"] / f"{name}.json", ref)

    # ---- DAML genomes
    pset_miner = ops.create_pset()
    pset_val = ops.create_pset_validator()
    psets = {"miner": pset_miner, "validator": pset_val}

    daml = {}  # name -> (pset name, canonical expression, file text style, encoding)
    expr = evolved_baseline_expression(ops)
    tree = gp.PrimitiveTree.from_string(expr, pset_val)
    assert str(tree) == expr, "evolved_baseline_loss does not round-trip through DEAP"
    daml["evolved_baseline_loss"] = ("validator", str(tree), "tensor", "double")

    # 30 trees from one seeded stream (DEAP draws from the global `random`).
    # Four slots in five are redrawn until the tree uses x (= y_pred), since
    # half of the raw draws never do, and two in five until it also holds an
    # ephemeral constant; every fifth slot takes the first draw.
    trees = []
    random.seed(7000)
    for i in range(30):
        pname = "miner" if i < 15 else "validator"
        while True:
            t = gp.PrimitiveTree(gp.genHalfAndHalf(psets[pname], min_=1, max_=5))
            uses_x = any(getattr(node, "value", None) == "x" for node in t)
            has_const = any(isinstance(type(node), gp.MetaEphemeral) for node in t)
            if i % 5 == 4 or (uses_x and (has_const or i % 5 in (1, 3))):
                break
        round_ephemerals(t, gp)
        trees.append((pname, str(t)))
    with_consts = [i for i, (_, e) in enumerate(trees) if "tensor(" in e]
    plain = [next(i for i in with_consts if i < 15), next(i for i in with_consts if i >= 15)]
    cuda = next(i for i in with_consts if i not in plain)
    for i, (pname, e) in enumerate(trees):
        style = "plain" if i in plain else "cuda" if i == cuda else "tensor"
        daml[f"random_{i:03d}"] = (pname, e, style, "double" if i % 2 == 0 else "object")

    for name, (pname, e, style, enc) in daml.items():
        text = {"tensor": e, "plain": to_plain_numbers(e), "cuda": to_cuda_literals(e)}[style]
        gene = {"expression": text, "hotkey": HOTKEY}
        path = CORPUS["daml"] / f"{name}.json"
        with open(path, "w") as f:
            if enc == "double":
                # what DAML's uploader writes: json.dump of save_individual_to_json(...)
                json.dump(json.dumps(gene), f)
            else:
                json.dump(gene, f)
            f.write("\n")
        # sanity: the file text means the canonical expression
        data = json.loads(path.read_text())
        if isinstance(data, str):
            data = json.loads(data)
        assert same_expression(data["expression"], e), name
        pset = psets[pname]
        func = daml_compile(e, pset)
        ref = {"format": "daml", "genome": f"tests/corpus/daml/{name}.json", "torch": tv,
               "pset": pname, "expression": e,
               "cases": [run_daml(func, yp, yt) for yp, yt in cases]}
        ref["daml_loader"] = daml_loader_check(gene_io, gp, creator, base, pset, path, *cases[0])
        write_json(REF["daml"] / f"{name}.json", ref)

    print(f"wrote {len(amm)} AMM and {len(daml)} DAML genomes with references (torch {tv})")


if __name__ == "__main__":
    main()
