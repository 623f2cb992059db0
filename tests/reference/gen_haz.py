#!/usr/bin/env python3
"""Build the HAZ test corpus and its reference values.

The reference values are produced by the public Hierarchical-AutoML-Zero code
itself (github.com/mekaneeky/Hierarchical-AutoML-Zero), imported from a scratch
checkout whose path is given in the environment variable HAZ_REPO.  Nothing of
that code is copied here: this script only builds genomes, imports them with
the project's own `import_gene_from_json`, and runs them with the project's own
`EvolvedLoss` module, i.e. exactly the path a loss gene takes in the miner and
validator.

Usage:
    HAZ_REPO=/path/to/checkout python tests/reference/gen_haz.py

Outputs (paths relative to the ncpc repository root):
    tests/corpus/haz/<name>.json      genomes in the project's JSON export format
    tests/reference/haz/<name>.json   {"format":"haz", "genome":..., "torch":...,
                                       "cases":[{y_pred, y_true, loss, grad_pred, fault}]}

See docs/formats/haz.md ("How the reference data was made").
"""

import json
import math
import os
import random
import sys
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = ROOT / "tests" / "corpus" / "haz"
REF_DIR = ROOT / "tests" / "reference" / "haz"

B, C = 4, 3
SEED = 42  # the project's config.seed; set before every evaluation

# ---------------------------------------------------------------------------
# importing the public code


def load_haz():
    repo = os.environ.get("HAZ_REPO")
    if not repo or not Path(repo, "automl", "gene_io.py").is_file():
        sys.exit("HAZ_REPO must point at a checkout of mekaneeky/Hierarchical-AutoML-Zero")
    sys.path.insert(0, str(Path(repo).resolve()))
    # config.py does `import bittensor as bt` at module level but only uses it
    # inside get_bittensor_config(); an empty stand-in module is enough to read
    # the size limits (max_num_scalars, ...) that the validator applies.
    sys.modules.setdefault("bittensor", types.ModuleType("bittensor"))
    import torch  # noqa: F401
    from automl import gene_io, models, memory, function_decoder
    from config import config
    return gene_io, models, memory, function_decoder, config


gene_io, models, memory_mod, fdec, CONFIG = load_haz()
import torch  # noqa: E402

warnings.simplefilter("ignore")  # torch.tensor(tensor) copy warnings etc.

DECODER = fdec.FunctionDecoder()
# ops whose result is drawn from torch's global RNG
RANDOM_OPS = {17, 18, 19, 49, 81, 101}

# memory layouts (all pass the validator's size limits)
MEM_SMALL = {"num_scalars": 5, "num_vectors": 5, "num_tensors": 5,
             "scalar_size": 1, "vector_size": [C], "tensor_size": [B, C]}
MEM_WIDE = {"num_scalars": 5, "num_vectors": 5, "num_tensors": 5,
            "scalar_size": 1, "vector_size": [128], "tensor_size": [100, 100]}
# exactly config.Miner: 128x128 tensors exceed config.max_tensor_size (10000)
MEM_MINER = {"num_scalars": 5, "num_vectors": 5, "num_tensors": 5,
             "scalar_size": 1, "vector_size": [128], "tensor_size": [128, 128]}

# address helpers for 5/5/5 layouts
S = lambda i: i          # scalar slot i   -> address i
V = lambda i: 5 + i      # vector slot i   -> address 5+i
T = lambda i: 10 + i     # tensor slot i   -> address 10+i
PRED, TRUE = 0, 1        # where EvolvedLoss writes y_pred / y_true


def genome(instrs, mem=MEM_SMALL, row_fixed=0, column_fixed=0, version=0):
    """instrs: list of (op, in1, in2, out, c1, c2). Returns export-format dict."""
    return {
        "length": len(instrs),
        "meta_level": 0,
        "gene": [int(i[0]) for i in instrs],
        "input_gene": [int(i[1]) for i in instrs],
        "input_gene_2": [int(i[2]) for i in instrs],
        "output_gene": [int(i[3]) for i in instrs],
        "constants_gene": [float(i[4]) for i in instrs],
        "constants_gene_2": [float(i[5]) for i in instrs],
        "row_fixed": row_fixed,
        "column_fixed": column_fixed,
        "version": version,
        "fitness": None,
        "memory": json.loads(json.dumps(mem)),
    }


def I(op, in1=0, in2=0, out=0, c1=0.0, c2=0.0):
    return (op, in1, in2, out, c1, c2)


E = math.e

HANDMADE = {
    # mean((p - y)^2)
    "mse": genome([
        I(2, PRED, TRUE, S(2)),      # s2 = p - y
        I(3, S(2), S(2), PRED),      # s0 = s2 * s2
    ]),
    # mean(|p - y|)
    "l1": genome([
        I(32, PRED, TRUE, S(2)),     # vector-typed sub, same function
        I(5, S(2), S(3), PRED),      # abs
    ]),
    # row-wise softmax cross-entropy: mean_b( logsumexp(p_b) - <y_b, p_b> )
    # exp(x) is pow(e, x); row sums are matmul with a ones vector of length C,
    # obtained by broadcasting the scalar 1 to the length of p^T's first dim.
    "softmax_xent": genome([
        I(16, S(4), S(4), S(2), E, 0.5),    # s2 = e
        I(21, S(2), PRED, S(3)),            # s3 = e ** p          [B,C]
        I(100, PRED, T(0), S(4)),           # s4 = p^T             [C,B]
        I(16, S(2), S(2), S(2), 1.0, 0.5),  # s2 = 1
        I(95, S(2), S(4), V(0)),            # v0 = ones(C)
        I(99, S(3), V(0), S(3)),            # s3 = rowsum(e**p)    [B]
        I(20, S(3), S(3), S(3)),            # s3 = log(|s3| + 1e-10)
        I(3, PRED, TRUE, S(4)),             # s4 = p * y
        I(99, S(4), V(0), S(4)),            # s4 = rowsum(p*y)     [B]
        I(2, S(3), S(4), PRED),             # s0 = lse - <y,p>
    ]),
    # binary cross-entropy on sigmoid(p), element-wise, mean over B*C
    "sigmoid_bce": genome([
        I(13, PRED, S(2), S(2)),            # s2 = sigmoid(p)
        I(20, S(2), S(2), S(3)),            # s3 = log(s2)
        I(16, S(4), S(4), S(4), 1.0, 0.5),  # s4 = 1
        I(2, S(4), S(2), S(2)),             # s2 = 1 - sigmoid(p)
        I(20, S(2), S(2), S(2)),            # s2 = log(1 - sigmoid(p))
        I(2, S(4), TRUE, V(0)),             # v0 = 1 - y
        I(3, V(0), S(2), S(2)),             # s2 = (1-y) log(1-sig)
        I(3, TRUE, S(3), S(3)),             # s3 = y log(sig)
        I(1, S(2), S(3), S(2)),             # s2 = sum of both
        I(16, S(3), S(3), S(3), -1.0, 0.5), # s3 = -1
        I(94, S(2), S(3), PRED),            # s0 = -s2
    ]),
    # softmax over ALL B*C entries (op 46 is not row-wise), then squared error
    "global_softmax_sq": genome([
        I(46, PRED, S(2), S(2)),            # s2 = softmax over all of p
        I(32, S(2), TRUE, S(2)),            # s2 = s2 - y
        I(33, S(2), S(2), PRED),            # s0 = s2 * s2
    ]),
    # column std (unbiased, dim 0), global max/min/mean, scalar broadcasts
    "reductions": genome([
        I(48, PRED, S(2), V(0)),            # v0 = std(p, dim 0)    [C]
        I(53, PRED, S(2), S(2)),            # s2 = max(p)           []
        I(86, TRUE, S(3), S(3)),            # s3 = min(y) = 0       []
        I(79, PRED, S(3), S(4)),            # s4 = mean(p)          []
        I(1, V(0), S(2), V(0)),             # v0 += max
        I(2, V(0), S(4), V(0)),             # v0 -= mean
        I(23, V(0), S(3), PRED),            # s0 = maximum(v0, 0)   [C]
    ]),
    # p / y with one-hot y: +-inf where y == 0, so non-finite loss and gradient
    "nonfinite_div": genome([
        I(4, PRED, TRUE, PRED),
    ]),
    # loss is a detached constant: forward fine, loss.backward() raises
    "const_loss": genome([
        I(16, S(2), S(2), PRED, 0.5, 0.5),
    ]),
    # op 0 returns None and stores it: reading slot 0 afterwards fails
    "nop_poison": genome([
        I(2, PRED, TRUE, S(2)),
        I(0, S(2), S(3), PRED),
    ]),
    # a zero vector of length 128 does not broadcast against [4,3]
    "shape_fault_vec128": genome([
        I(31, PRED, V(0), PRED),
    ], mem=MEM_WIDE),
    # the miner's default memory (128x128 tensors) is rejected by the
    # validator's size check (10000 elements max)
    "limit_tensor_size": genome([
        I(2, PRED, TRUE, S(2)),
        I(3, S(2), S(2), PRED),
    ], mem=MEM_MINER),
}


def address_for(kind, mem, rng):
    ns, nv, nt = mem["num_scalars"], mem["num_vectors"], mem["num_tensors"]
    if kind == "scalar":
        return rng.randrange(0, ns)
    if kind == "vector":
        return rng.randrange(ns, ns + nv)
    return rng.randrange(ns + nv, ns + nv + nt)  # "matrix" and None


def random_genome(seed, mem):
    """Random program over the deterministic ops.  Addresses follow the
    declared kinds like the project's own generator, except that inputs are
    usually taken from slots already holding data (y_pred, y_true or an
    earlier result) so that the program is not mostly reading zeros."""
    rng = random.Random(seed)
    ops = [op for op in sorted(DECODER.decoding_map) if op not in RANDOM_OPS and op != 0]
    n = rng.randint(4, 8)
    live = [PRED, TRUE]
    instrs = []
    for k in range(n):
        op = rng.choice(ops)
        _, out_t, in1_t, in2_t = DECODER.decoding_map[op]
        in1 = rng.choice(live) if rng.random() < 0.85 else address_for(in1_t, mem, rng)
        in2 = rng.choice(live) if rng.random() < 0.6 else address_for(in2_t, mem, rng)
        out = PRED if k == n - 1 else address_for(out_t, mem, rng)
        if out not in live:
            live.append(out)
        instrs.append(I(op, in1, in2, out, rng.uniform(-1, 1), rng.uniform(0, 1)))
    vec0 = mem["vector_size"][0]
    ten1 = mem["tensor_size"][1]
    return genome(instrs, mem=mem, row_fixed=rng.randint(0, vec0 - 1),
                  column_fixed=rng.randint(0, ten1 - 1))


def nontrivial(grad):
    flat = [x for row in grad for x in row]
    return all(isinstance(x, float) for x in flat) and any(x != 0.0 for x in flat)


# ---------------------------------------------------------------------------
# inputs


def make_cases():
    g = torch.Generator().manual_seed(20240601)
    labels = torch.randint(0, C, (3, B), generator=g)
    preds = [
        torch.randn(B, C, generator=g) * 2.0,
        torch.rand(B, C, generator=g) * 0.9 + 0.05,
        torch.randn(B, C, generator=g) * 10.0,
    ]
    cases = []
    for k in range(3):
        y_true = torch.nn.functional.one_hot(labels[k], C).float()
        cases.append((preds[k].float(), y_true))
    return cases


# ---------------------------------------------------------------------------
# evaluation through the project's own EvolvedLoss


class RecordingMemory(memory_mod.CentralMemory):
    """CentralMemory that remembers every value written to it (to recover the
    y_pred leaf that EvolvedLoss creates internally with requires_grad)."""

    def __setitem__(self, index, data):
        self.__dict__.setdefault("writes", []).append((index, data))
        super().__setitem__(index, data)


def jnum(x):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def jlist(t):
    if t.dim() == 0:
        return jnum(t.item())
    return [jlist(r) for r in t]


def import_gene(data):
    random.seed(SEED)
    return gene_io.import_gene_from_json(gene_data=json.loads(json.dumps(data)),
                                         function_decoder=DECODER, config=CONFIG)


def evaluate(data, y_pred, y_true):
    """Returns (loss, grad_pred, fault) as JSON-ready values."""
    try:
        gene = import_gene(data)
    except Exception as e:  # noqa: BLE001
        return None, None, f"import: {type(e).__name__}: {e}"
    gene.memory.__class__ = RecordingMemory
    gene.memory.writes = []
    torch.manual_seed(SEED)
    loss_fn = models.EvolvedLoss(gene, "cpu")
    try:
        loss = loss_fn(y_pred.clone(), y_true.clone())
    except Exception as e:  # noqa: BLE001
        return None, None, f"forward: {type(e).__name__}: {e}"
    leaf = gene.memory.writes[0][1]  # memory[0] = outputs (the requires_grad leaf)
    assert gene.memory.writes[0][0] == 0 and leaf.requires_grad and leaf.is_leaf
    if not isinstance(loss, torch.Tensor):
        return None, None, f"forward: loss is {type(loss).__name__}"
    if loss.numel() != 1:
        return None, None, f"forward: loss has {loss.numel()} elements"
    value = jnum(loss.detach().reshape(()).item())
    try:
        loss.backward()
    except Exception as e:  # noqa: BLE001
        return value, None, f"backward: {type(e).__name__}: {e}"
    grad = None if leaf.grad is None else jlist(leaf.grad)
    return value, grad, None


def first_line(s):
    return s if s is None else s.splitlines()[0][:300]


def main():
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    REF_DIR.mkdir(parents=True, exist_ok=True)
    cases = make_cases()

    genomes = dict(HANDMADE)
    # seeded random genomes from deterministic ops; keep the first candidates of
    # each seed stream that yield a finite loss with a finite, non-zero
    # gradient on case 0,
    # plus the first candidate of one stream unconditionally.
    def pick(stream, mem, count, require_ok):
        got, seed = [], stream
        while len(got) < count:
            cand = random_genome(seed, mem)
            seed += 1000
            if require_ok:
                loss, grad, fault = evaluate(cand, *cases[0])
                if fault or grad is None or not isinstance(loss, float) \
                        or not nontrivial(grad):
                    continue
            got.append(cand)
        return got
    rnd = pick(1, MEM_SMALL, 4, True) + pick(2, MEM_WIDE, 1, True) + pick(3, MEM_SMALL, 1, False)
    for k, g in enumerate(rnd):
        genomes[f"random_{k:02d}"] = g

    for name, data in genomes.items():
        # round-trip through the project's importer/exporter so the corpus is
        # in exactly the exported layout (when the importer accepts it)
        try:
            exported = gene_io.export_gene_to_json(import_gene(data))
            exported = json.loads(json.dumps(exported))
            assert exported == data, f"{name}: export round-trip differs"
        except ValueError:
            pass  # rejected by the size limits (limit_tensor_size)
        with open(CORPUS_DIR / f"{name}.json", "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        out = []
        for y_pred, y_true in cases:
            loss, grad, fault = evaluate(data, y_pred, y_true)
            out.append({"y_pred": jlist(y_pred), "y_true": jlist(y_true),
                        "loss": loss, "grad_pred": grad, "fault": first_line(fault)})
        ref = {"format": "haz", "genome": f"tests/corpus/haz/{name}.json",
               "torch": torch.__version__, "cases": out}
        with open(REF_DIR / f"{name}.json", "w") as f:
            json.dump(ref, f, indent=1, allow_nan=False)
            f.write("\n")
        print(f"{name:22s}", [(c['loss'], c['fault'] and c['fault'][:60]) for c in out])

    # sanity checks of the hand-made programs against torch's own losses
    for y_pred, y_true in cases:
        ce = torch.nn.functional.cross_entropy(y_pred, y_true.argmax(1)).item()
        mse = torch.nn.functional.mse_loss(y_pred, y_true).item()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(y_pred, y_true).item()
        l_ce = evaluate(genomes["softmax_xent"], y_pred, y_true)[0]
        l_mse = evaluate(genomes["mse"], y_pred, y_true)[0]
        l_bce = evaluate(genomes["sigmoid_bce"], y_pred, y_true)[0]
        print(f"check ce {ce:.6g} vs {l_ce}, mse {mse:.6g} vs {l_mse}, bce {bce:.6g} vs {l_bce}")


if __name__ == "__main__":
    main()
