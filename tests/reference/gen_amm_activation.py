"""Reference fixtures for AMM's activation component (component_type `activation` or
`activation_function`), written as JSON under tests/reference/amm_activation/.

Each evaluate task runs in a fresh Python process (a fresh AMM miner) through AMM's own client
code: `PoolClient.process_evaluation_task(task_data)` of automl_client/client.py, which
deserializes the functions, makes one `ActivationStrategy` for the task and calls
`evaluate(genetic_code, stop_flag=None)` per function, applies its failure encodings (an
exception -> score 0.0 and criteria 0.0; -inf/NaN -> -99999) and posts the evaluations. The
HTTP session is replaced by a recorder, so `evaluations` below is exactly the JSON body AMM's
`submit_evaluation` would post (after its own -inf pass), minus the signature fields.

AMM is imported from a checkout of Hivetensor/AutoML-Miner (AMM_REPO); none of its code is
copied. One thing is substituted, as in gen_amm_exact.py (whose loader is imported from
there): AMM's `DatasetFactory._load_mnist` reads MNIST through torchvision; here the same
first 2000 training images come from ncpc's embedded subset and go through the same float32
arithmetic, then AMM's split code runs as written. PYTHONHASHSEED is fixed per process so that
AMM's probe tensor (`get_fixed_tensor('activation_test_x', (32, 784))`, seeded from Python's
`hash()`) is reproducible; the seed used and the probe's SHA-256 are recorded.

Diagnostics recorded beside the submitted scores (readers may ignore them), taken by thin
wrappers that call AMM's functions unchanged:
  raw        repr of what `ActivationStrategy.evaluate` returned, or "Exc: message" it raised
  fec_key    SHA-256 hex of the probe bytes (float16 of round(out*1e4)), null if not reached
  cached     true when the key was already in AMM's `_FEC_CACHE` (no training ran)
  trained    true when `_full_evaluate` ran
  model_activation  the (validated) program the task's model actually used when it trained
             (AMM keeps the first trained function's activation for the whole task)
  validated  RegisterValidator.validate_and_fix_genetic_code(function), or "Exc: message"
  steps, epoch_avg_loss  training steps run and each epoch's mean loss, summed in Python floats
             in step order as AMM does (the value its early stop compares); step_losses: every
             step's loss.item(), for the first function of the task that trained
  weights_sha256  SHA-256 of the model's float32 tensors after that function (they carry on)

    AMM_REPO=/path/to/AutoML-Miner venv/bin/python tests/reference/gen_amm_activation.py
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests/reference")
HASH_SEED = "0"
AMM_FILES = [
    "automl_client/client.py",
    "automl_client/components/activation/strategy.py",
    "automl_client/components/activation/library.py",
    "automl_client/components/optimizer/strategy.py",
    "automl_client/components/optimizer/library.py",
    "automl_client/genetic/interpreter.py",
    "automl_client/genetic/strategies.py",
    "automl_client/genetic/serialize.py",
    "automl_client/utils/fec.py",
    "automl_client/models/model_factory.py",
    "automl_client/data/dataset_factory.py",
]

# Hand-written activation programs. Inputs: S0 = the hidden pre-activation x (B x 8), S2 =
# B (int64), S3 = 0.001, S4 = 1e-7, S5 = ones(B, 8), S6 = zeros(B, 8); S1 is absent (LOAD
# gives tensor(0.0)). AMM's RegisterValidator rewrites every program before it runs: a first
# instruction that is not LOAD becomes [100,1,0], a second that is not LOAD becomes
# [100,2,1], the last becomes [453,9] (or [453,9] is appended), and register-like operands
# (the constant of 20/21 included) become int() clamped to 0..19. So only R9 is returned.
FUNCTIONS = {
    # AMM's ActivationLibrary as published: all three return R9, never written -> 0.0
    "relu": [[100, 1, 0], [101, 2, 0.0], [300, 1, 2, 3], [453, 3]],
    "sigmoid": [[100, 1, 0], [11, 1, 2], [8, 2, 3], [101, 4, 1.0], [1, 4, 3, 5],
                [4, 4, 5, 6], [453, 6]],
    "identity": [[100, 1, 0], [453, 1]],
    # written so that they survive the validator
    "relu_max": [[100, 1, 0], [101, 2, 0.0], [300, 1, 2, 9], [453, 9]],  # max(x, S1=0)
    "relu_op": [[100, 1, 0], [100, 2, 1], [250, 1, 9], [453, 9]],
    "sigmoid_op": [[100, 1, 0], [100, 2, 1], [251, 1, 9], [453, 9]],
    "tanh_op": [[100, 1, 0], [100, 2, 1], [252, 1, 9], [453, 9]],
    "softmax": [[100, 1, 0], [100, 2, 1], [253, 1, 9], [453, 9]],  # over the 8 hidden units
    # NN ops (250-253) write to their THIRD operand (default R9): [251, 1, 0, 3] is R3 =
    # sigmoid(R1), while [251, 1, 3] writes R9 and leaves R3 unset (tensor(0.0))
    "swish": [[100, 1, 0], [100, 2, 1], [251, 1, 0, 3], [3, 1, 3, 9], [453, 9]],
    "swish_nn_dest": [[100, 1, 0], [100, 2, 1], [251, 1, 3], [3, 1, 3, 9], [453, 9]],  # x*0
    "square": [[100, 1, 0], [100, 2, 1], [10, 1, 9], [453, 9]],
    "exp": [[100, 1, 0], [100, 2, 1], [8, 1, 9], [453, 9]],
    "identity_clone": [[100, 1, 0], [100, 2, 1], [110, 1, 9], [453, 9]],
    "relu_where": [[100, 1, 0], [100, 2, 1], [409, 1, 2, 9, 2], [453, 9]],  # where(x>=0, x, 0)
    # MUL_CONST 0.01 -> constant operand clamped to int 0 -> max(x, 0*x) = relu
    "leaky_mulconst": [[100, 1, 0], [100, 2, 1], [21, 1, 0.01, 3], [300, 1, 3, 9], [453, 9]],
    # ADD_CONST 2.7 -> 2: sigmoid(x + 2)
    "shifted_sigmoid": [[100, 1, 0], [100, 2, 1], [20, 1, 2.7, 3], [251, 3, 9], [453, 9]],
    # a RETURN before the last instruction is kept: returns tanh(x) from R4
    "early_return": [[100, 1, 0], [100, 2, 1], [252, 1, 0, 4], [453, 4], [101, 9, 0.0], [453, 9]],
    # the library sigmoid written to R9: its 2nd instruction is replaced by LOAD R2,S1 -> 0.0,
    # so R9 = 1/(1+exp(0)+1e-7), a constant
    "sigmoid_const": [[100, 1, 0], [11, 1, 2], [8, 2, 3], [101, 4, 1.0], [1, 4, 3, 5],
                      [4, 4, 5, 9], [453, 9]],
    "batch_div": [[100, 1, 0], [100, 3, 2], [4, 1, 3, 9], [453, 9]],  # x / (B + 1e-7)
    "ones": [[100, 1, 0], [100, 9, 5], [453, 9]],  # ones(B, 8), no path to x
    "gt_bool": [[100, 1, 0], [100, 2, 1], [400, 1, 2, 9], [453, 9]],  # bool x > 0
    "reduce_mean": [[100, 1, 0], [100, 2, 1], [201, 1, -1, 9], [453, 9]],  # shape (B,)
    "reduce_scalar": [[100, 1, 0], [100, 2, 1], [201, 1, -1, 3], [201, 3, 0, 9], [453, 9]],
    "transpose": [[100, 1, 0], [100, 2, 1], [103, 1, 9], [453, 9]],  # (8, B)
    "matmul": [[100, 1, 0], [100, 2, 1], [102, 1, 1, 9], [453, 9]],  # x@x only when B == 8
    "pow_half": [[100, 1, 0], [100, 2, 1], [101, 3, 0.5], [5, 1, 3, 9], [453, 9]],  # NaN < 0
    "float_regs": [[100, 1, 0.0], [100, 2, 1], [252, 1.9, 9.7], [453, 9]],  # int() truncates
    "string_reg": [[100, 1, 0], [100, 2, 1], [252, "1", 9], [453, 9]],
    # every instruction dropped by the validator (not a list, or empty): it substitutes
    # [[100,1,0],[100,2,1],[350,1,2,9],[453,9]], i.e. the constant mean((x - 0)^2)
    "all_invalid": [[], 7, []],
    # one LOAD: the validator appends [453,9] -> identity
    "load9_identity": [[100, 9, 0]],
    # failures in the probe, outside AMM's try: the client scores them 0.0
    "no_return_end": [[100, 1, 0], [100, 2, 1], [250, 1, 9], [454], [453, 9]],
    "jump_loop": [[100, 1, 0], [100, 2, 1], [450, 0], [453, 9]],  # budget 1000, no RETURN
    "empty": [],
    "string_opcode": [[100, 1, 0], [100, 2, 1], ["250", 1, 9], [453, 9]],  # "250" >= 350
}

MUTANT_BASES = ["sigmoid", "swish", "sigmoid_const", "shifted_sigmoid", "early_return",
                "leaky_mulconst"]


def mutants():
    """Variants made by AMM's own mutation operator (SteadyStateGeneticAlgorithm.mutate,
    which ends with RegisterValidator), as AMM evolvers submit them."""
    sys.path.insert(0, os.environ["AMM_REPO"])
    import logging
    logging.disable(logging.CRITICAL)
    from automl_client.genetic.strategies import SteadyStateGeneticAlgorithm
    ga = SteadyStateGeneticAlgorithm()
    out = {}
    for k in range(12):
        base = MUTANT_BASES[k % len(MUTANT_BASES)]
        random.seed(5150 + k)
        code = ga.mutate(FUNCTIONS[base], 0.6)
        if k % 3 == 2:  # a second generation
            code = ga.mutate(code, 0.6)
        out[f"mut_{k:02d}_{base}"] = json.loads(json.dumps(code))
    return out


def tasks(progs):
    named = [
        ("activation", ["relu", "sigmoid", "identity"]),
        ("activation", ["sigmoid_op", "relu", "relu_op", "tanh_op", "sigmoid_op"]),
        ("activation", ["relu_op", "relu_where", "leaky_mulconst", "swish", "square"]),
        ("activation", ["tanh_op", "early_return", "shifted_sigmoid", "identity_clone"]),
        ("activation", ["softmax", "batch_div", "ones", "sigmoid_const"]),
        ("activation", ["no_return_end", "relu_op", "jump_loop", "empty", "string_opcode"]),
        ("activation", ["gt_bool", "relu_op", "reduce_mean", "transpose"]),
        ("activation", ["relu_max", "reduce_scalar", "matmul", "pow_half"]),
        ("activation", ["pow_half", "tanh_op", "exp"]),
        ("activation", ["exp", "float_regs", "string_reg", "relu_op"]),
        ("activation", ["identity_clone", "ones", "relu"]),
        ("activation", ["swish", "swish_nn_dest", "relu", "early_return"]),
        ("activation", ["early_return", "tanh_op", "swish_nn_dest"]),
        ("activation", ["all_invalid", "load9_identity", "identity_clone", "relu_op"]),
        ("activation_function", ["swish", "relu_op", "sigmoid_op"]),
    ]
    out = [{"component_type": ct, "functions": fs} for ct, fs in named]
    mut = sorted(n for n in progs if n.startswith("mut_"))
    rnd = random.Random(99)
    lib = ["relu", "sigmoid", "identity", "relu_op", "sigmoid_op", "tanh_op", "swish"]
    for _ in range(8):
        out.append({"component_type": "activation", "functions": rnd.sample(mut + lib, 4)})
    return out


def wire_task(task, progs, string_form=False):
    """The task as a pool sends it: functions as JSON values (ncpc's pool) or JSON text."""
    fns = []
    for i, name in enumerate(task["functions"]):
        f = progs[name]
        fns.append({"id": 1000 + i, "function": json.dumps(f) if string_form else f})
    return {"batch_id": "fixture", "task_type": "evaluate",
            "component_type": task["component_type"], "functions": fns}


# ---------------------------------------------------------------- child process

def run_client_task(task_data, strategy_module, strategy_class):
    """One fresh AMM miner: AMM's `process_evaluation_task` on `task_data`; returns the
    posted evaluations and per-call diagnostics."""
    import logging
    import torch
    logging.disable(logging.CRITICAL)
    torch.set_num_threads(1)
    sys.path.insert(0, os.environ["AMM_REPO"])
    sys.path.insert(0, HERE)
    import importlib
    import gen_amm_exact
    from automl_client.data.dataset_factory import DatasetFactory
    DatasetFactory._load_mnist = staticmethod(gen_amm_exact.patched_load_mnist)
    from automl_client import client as amm_client
    from automl_client.genetic.strategies import RegisterValidator
    from automl_client.utils import fec
    smod = importlib.import_module(strategy_module)
    cls = getattr(smod, strategy_class)

    calls = []
    state = {}

    orig_eval = cls.evaluate

    def evaluate(self, *args, **kwargs):
        code = args[0] if args else kwargs.get("genetic_code")
        d = {"trained": False, "cached": None, "fec_key": None}
        try:
            d["validated"] = RegisterValidator.validate_and_fix_genetic_code(json.loads(json.dumps(code)))
        except Exception as e:
            d["validated"] = f"{type(e).__name__}: {e}"
        calls.append(d)
        state["self"] = self
        try:
            r = orig_eval(self, *args, **kwargs)
        except Exception as e:
            d["raw"] = f"{type(e).__name__}: {e}"
            raise
        d["raw"] = repr(r)
        m = getattr(self, "_reference_model", None)
        if d["trained"] and m is not None:
            d["model_activation"] = json.loads(m[1]._genetic_code_str)
            d["weights_sha256"] = {k: gen_amm_exact.f32_sha(v) for k, v in m.state_dict().items()}
        losses = d.pop("_losses", [])
        if d["trained"]:
            per = -(-1800 // self.activation_config["batch_size"])  # steps per epoch
            avgs = []
            for e in range(0, len(losses), per):
                total = 0.0
                for v in losses[e:e + per]:
                    total += v
                avgs.append(total / len(losses[e:e + per]))
            d["steps"] = len(losses)
            d["epoch_avg_loss"] = avgs
            if not state.get("losses_written"):
                d["step_losses"] = losses
                state["losses_written"] = True
        return r

    cls.evaluate = evaluate

    class RecordingCrossEntropy(torch.nn.CrossEntropyLoss):
        """AMM's training loss (activation strategy), unchanged; records each step's value."""
        def forward(self, input, target):
            out = super().forward(input, target)
            if calls:
                calls[-1].setdefault("_losses", []).append(out.item())
            return out

    torch.nn.CrossEntropyLoss = RecordingCrossEntropy
    if hasattr(cls, "_full_evaluate"):
        orig_full = cls._full_evaluate

        def full(self, *args, **kwargs):
            calls[-1]["trained"] = True
            return orig_full(self, *args, **kwargs)

        cls._full_evaluate = full
    if hasattr(smod, "fec_lookup_or_evaluate"):
        orig_fec = smod.fec_lookup_or_evaluate

        def fec_lookup(hash_bytes, evaluator):
            h = hashlib.sha256(hash_bytes).hexdigest()
            calls[-1]["fec_key"] = h
            calls[-1]["cached"] = h in fec._FEC_CACHE
            return orig_fec(hash_bytes, evaluator)

        smod.fec_lookup_or_evaluate = fec_lookup

    posted = []

    class Response:
        def raise_for_status(self):
            pass

        def json(self):
            return {"status": "recorded"}

    class Session:
        def post(self, url, json=None):
            posted.append({"url": url, "json": json})
            return Response()

        def close(self):
            pass

    class Client(amm_client.PoolClient):
        def _create_signature_data(self):
            return {}

    c = Client(public_address="fixture")
    c.session = Session()
    t0 = time.time()
    outcome = None
    try:
        c.process_evaluation_task(task_data)
    except Exception as e:  # e.g. an unknown component_type: nothing is posted
        outcome = f"{type(e).__name__}: {e}"
    seconds = time.time() - t0
    evaluations = posted[0]["json"]["evaluations"] if posted else None
    res = {"evaluations": evaluations, "calls": calls, "task_exception": outcome,
           "seconds": round(seconds, 3)}  # printed by the parent, not written
    s = state.get("self")
    if s is not None and hasattr(s, "activation_config"):
        d = DatasetFactory.create_dataset("mnist", s.activation_config["dataset_config"], eval_seed=42)
        res["data_sha256"] = {k: gen_amm_exact.f32_sha(v) for k, v in d.items()}
        key = "activation_test_x"
        probe = fec._FEC_INPUTS.get((key, (32, 784)))
        if probe is not None:
            res["probe"] = {"key": key, "shape": [32, 784], "seed": abs(hash(key)) % (2**32),
                            "sha256": gen_amm_exact.f32_sha(probe)}
    return res


def amm_sources():
    out = {}
    for p in AMM_FILES:
        with open(os.path.join(os.environ["AMM_REPO"], p), "rb") as f:
            out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


def run_all(component, task_list, progs, child_args, out_dir):
    import torch
    env = dict(os.environ, PYTHONHASHSEED=HASH_SEED, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = []
    probe = None
    data_sha = None
    t_all = time.time()
    for t in task_list:
        string_form = t.get("string_form", False)
        data = wire_task(t, progs, string_form)
        for i, extra in enumerate(t.get("raw_functions", [])):  # JSON text as sent, not in progs
            data["functions"].append({"id": 2000 + i, "function": extra})
        r = subprocess.run([sys.executable] + child_args,
                           input=json.dumps(data), capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise SystemExit(f"child failed on {t}")
        res = json.loads(r.stdout)
        seconds = res.pop("seconds")
        probe = probe or res.pop("probe", None)
        res.pop("probe", None)
        data_sha = data_sha or res.pop("data_sha256", None)
        res.pop("data_sha256", None)
        entry = {"component_type": t["component_type"], "functions": t["functions"],
                 "task_data": data, **res}
        results.append(entry)
        print(t["component_type"], t["functions"],
              [e["score"] for e in (res["evaluations"] or [])], f"{seconds}s", file=sys.stderr)
    doc = {
        "component": component,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "amm_sources_sha256": amm_sources(),
        "pythonhashseed": HASH_SEED,
        "threads": 1,
        "data_sha256": data_sha,
        "probe": probe,
        "programs": progs,
        "tasks": results,
    }
    os.makedirs(out_dir, exist_ok=True)

    def strict(v):
        """Non-finite diagnostics (NaN losses) as strings: the file stays strict JSON."""
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return repr(v)
        if isinstance(v, dict):
            return {k: strict(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strict(x) for x in v]
        return v

    with open(os.path.join(out_dir, "tasks.json"), "w") as f:
        json.dump(strict(doc), f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"{component}: {len(results)} tasks in {time.time() - t_all:.1f} s", file=sys.stderr)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--task":
        res = run_client_task(json.load(sys.stdin), "automl_client.components.activation.strategy",
                              "ActivationStrategy")
        print(json.dumps(res))
        return
    progs = dict(FUNCTIONS)
    progs.update(mutants())
    task_list = tasks(progs)
    # the same functions sent as JSON text, plus text AMM's client skips (no evaluation record):
    # invalid JSON, and JSON that is not a list of lists
    task_list.append({"component_type": "activation_function", "functions": ["relu_op", "tanh_op"],
                      "string_form": True,
                      "raw_functions": ["[[100, 1, 0], [453", "{\"a\": 1}", "[[100, 1, 0], 7]"]})
    run_all("activation", task_list, progs, [os.path.abspath(__file__), "--task"], os.path.join(HERE, "amm_activation"))


if __name__ == "__main__":
    main()
