"""Reference fixtures for `--protocol amm-exact` (tests/amm_exact.rs).

Two parts, both written as JSON under tests/reference/amm_exact/:

* `torch_rng.json`: torch's CPU generator as PyTorch itself runs it: the first values of
  `torch.manual_seed(42)` through `random()`/`random64()` (read back through `randint`
  over the full range), `randperm(2000)`, `randint` sequences, an `nn.Linear(784, 64)` and
  `nn.Linear(64, 10)` made after `manual_seed(42)` (as AMM's ModelFactory makes them), and
  a few `torch.optim.Adam` steps (to pin its update order). Large tensors are stored as a
  SHA-256 of their float32 bytes plus a few exact values.
* `tasks.json`: evaluate tasks scored by AMM's own code. Each task runs in a fresh Python
  process (a fresh AMM miner): `LossStrategy().evaluate(program)` over the task's functions in
  order, with AMM's failure encodings applied as its client applies them
  (`process_evaluation_task`: an exception -> 0.0; -inf/NaN -> -99999).

AMM is imported from a checkout of Hivetensor/AutoML-Miner (AMM_REPO); none of its code is
copied. One thing is substituted: AMM's `DatasetFactory._load_mnist` reads MNIST through
torchvision (ToTensor, Normalize(0.1307, 0.3081)) and downloads it; here the same first 2000
training images come from ncpc's embedded subset and go through the same float32 arithmetic
(`x / 255`, `(x - 0.1307) / 0.3081`), then AMM's split code runs as written
(`torch.manual_seed(42)`, `torch.randperm(2000)`, 1800/200). PYTHONHASHSEED is fixed per
process so that AMM's probe tensors (seeded from Python's `hash()`) are reproducible; the
seed used is recorded.

    python3 -m venv venv && venv/bin/pip install torch numpy
    AMM_REPO=/path/to/AutoML-Miner venv/bin/python tests/reference/gen_amm_exact.py [rng|tasks|all]
"""
import gzip
import hashlib
import json
import math
import os
import random
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests/reference/amm_exact")
EMBEDDED = os.path.join(ROOT, "src/train/data/embedded")
CORPUS = os.path.join(ROOT, "tests/corpus/amm")
HASH_SEED = "0"


def f32_sha(t):
    import numpy as np
    return hashlib.sha256(t.detach().contiguous().numpy().astype(np.float32).tobytes()).hexdigest()


def bits(t):
    import numpy as np
    return [int(x) for x in t.detach().contiguous().numpy().astype(np.float32).view(np.uint32).reshape(-1)]


def rng_fixtures():
    import torch
    out = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    # randint draws random() (one 32-bit word) per element for a range below 2^32 and
    # random64() (two words) from 2^32 on, and reduces it modulo the range.
    torch.manual_seed(42)
    out["randint_2p31_seed42"] = [int(x) for x in torch.randint(0, 2**31, (64,), dtype=torch.int64)]
    torch.manual_seed(0)
    out["randint_2p32_seed0"] = [int(x) for x in torch.randint(0, 2**32, (8,), dtype=torch.int64)]
    torch.manual_seed(42)
    out["randint_2p40_seed42"] = [int(x) for x in torch.randint(0, 2**40, (16,), dtype=torch.int64)]
    torch.manual_seed(42)
    out["randperm_2000_seed42"] = [int(x) for x in torch.randperm(2000)]
    torch.manual_seed(7)
    out["randperm_10_seed7"] = [int(x) for x in torch.randperm(10)]
    # randint as AMM's training loop calls it, after the model's init consumed its draws.
    torch.manual_seed(42)
    out["randint_1800_seed42"] = [int(x) for x in torch.randint(0, 1800, (96,))]
    torch.manual_seed(123)
    out["uniform_m1_1_seed123"] = bits(torch.empty(40).uniform_(-1.0, 1.0))
    torch.manual_seed(42)
    l1 = torch.nn.Linear(784, 64)
    l2 = torch.nn.Linear(64, 10)
    after = [int(x) for x in torch.randint(0, 1800, (32,))]
    out["linear_seed42"] = {
        "w1_sha256": f32_sha(l1.weight), "w1_first": bits(l1.weight.reshape(-1)[:16]),
        "w1_last": bits(l1.weight.reshape(-1)[-4:]),
        "b1": bits(l1.bias), "w2": bits(l2.weight), "b2": bits(l2.bias),
        "randint_1800_after": after,
    }
    # Adam as AMM configures it (lr 1e-3, defaults otherwise): three steps on tensors of 10,
    # 32 and 40 elements (vector body and scalar tail), gradients from the generator.
    adam = {}
    for n in (10, 32, 40):
        torch.manual_seed(n)
        p = torch.nn.Parameter(torch.empty(n).uniform_(-1.0, 1.0))
        opt = torch.optim.Adam([p], lr=0.001)
        grads = []
        for _ in range(3):
            g = torch.empty(n).uniform_(-0.01, 0.01)
            grads.append(bits(g))
            p.grad = g.clone()
            opt.step()
        adam[str(n)] = {"grads": grads, "params": bits(p)}
    out["adam_seed_n"] = adam
    return out


def idx(path):
    data = gzip.open(path).read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return data[4 + 4 * ndim:], dims


def patched_load_mnist(config=None, seed=None):
    """AMM's torchvision branch of `_load_mnist`, reading the embedded first 2000 images."""
    import torch
    config = config or {}
    img, dims = idx(f"{EMBEDDED}/mnist-train-2000-images-idx3-ubyte.gz")
    lab, _ = idx(f"{EMBEDDED}/mnist-train-2000-labels-idx1-ubyte.gz")
    sample_size = config.get("sample_size", 2000)
    val_split = config.get("val_split", 0.1)
    x = torch.frombuffer(bytearray(img), dtype=torch.uint8).reshape(dims)[:sample_size]
    y = torch.frombuffer(bytearray(lab), dtype=torch.uint8).to(torch.int64)[:sample_size]
    # transforms.ToTensor then transforms.Normalize((0.1307,), (0.3081,)), float32.
    x = x.unsqueeze(1).to(torch.float32).div(255)
    mean = torch.as_tensor((0.1307,), dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor((0.3081,), dtype=torch.float32).view(-1, 1, 1)
    x = x.sub_(mean).div_(std)
    x = x.reshape(x.shape[0], -1)
    onehot = torch.zeros(y.size(0), 10)
    onehot.scatter_(1, y.unsqueeze(1), 1)
    val_size = int(x.size(0) * val_split)
    train_size = x.size(0) - val_size
    if seed is not None:
        torch.manual_seed(seed)
    indices = torch.randperm(x.size(0))
    tr, va = indices[:train_size], indices[train_size:train_size + val_size]
    return {"trainX": x[tr], "trainY": onehot[tr], "valX": x[va], "valY": onehot[va]}


def run_task(programs):
    """One fresh AMM miner process: score `programs` (JSON texts) as one evaluate task."""
    import logging
    import torch
    logging.disable(logging.CRITICAL)
    sys.path.insert(0, os.environ["AMM_REPO"])
    from automl_client.data.dataset_factory import DatasetFactory
    from automl_client.components.loss.strategy import LossStrategy
    from automl_client.genetic.serialize import deserialize_genetic_code
    DatasetFactory._load_mnist = staticmethod(patched_load_mnist)
    strategy = LossStrategy()
    scores = []
    data_sha = None
    for text in programs:
        code = text
        try:
            code = deserialize_genetic_code(text)
        except ValueError:
            scores.append({"skipped": True})
            continue
        if not isinstance(code, list):
            scores.append({"skipped": True})
            continue
        try:
            s = strategy.evaluate(code)
            low = s is None or math.isnan(s) or (math.isinf(s) and s < 0)
            scores.append({"score": -99999.0 if low else float(s), "raw": repr(s)})
        except Exception as e:  # AMM's client: an exception scores 0.0, criteria 0
            scores.append({"score": 0.0, "exception": type(e).__name__})
        if data_sha is None:
            d = DatasetFactory.create_dataset("mnist", strategy.loss_config["dataset_config"], eval_seed=42)
            data_sha = {k: f32_sha(v) for k, v in d.items()}
    return {"scores": scores, "data_sha256": data_sha}


def corpus():
    names = sorted(f[:-5] for f in os.listdir(CORPUS) if f.endswith(".json"))
    return {n: open(os.path.join(CORPUS, n)  + ".json").read() for n in names}


def tasks():
    """Tasks of several functions from the AMM corpus (library losses, mutants, edge cases),
    in a fixed pseudo-random order, plus hand-made ones (repeats for the score cache, a first
    function that fails)."""
    progs = corpus()
    names = list(progs)
    rnd = random.Random(14)
    out = [
        ["mse", "cross_entropy", "baikal", "bce", "mae"],
        ["mse", "mse", "cross_entropy", "mse"],
        ["edge_empty", "mse", "edge_no_return", "baikal"],
    ]
    for _ in range(int(os.environ.get("AMM_TASKS", "24"))):
        out.append(rnd.sample(names, 6))
    return [{"functions": t, "programs": [progs[n] for n in t]} for t in out]


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what == "--task":  # child process: one task from stdin
        print(json.dumps(run_task(json.load(sys.stdin))))
        return
    os.makedirs(OUT, exist_ok=True)
    if what in ("rng", "all"):
        with open(os.path.join(OUT, "torch_rng.json"), "w") as f:
            json.dump(rng_fixtures(), f, indent=1)
            f.write("\n")
    if what in ("tasks", "all"):
        import torch
        env = dict(os.environ, PYTHONHASHSEED=HASH_SEED, OMP_NUM_THREADS="1")
        results = []
        for t in tasks():
            r = subprocess.run([sys.executable, __file__, "--task"], input=json.dumps(t["programs"]),
                               capture_output=True, text=True, env=env, check=True)
            res = json.loads(r.stdout)
            results.append({"functions": t["functions"], **res})
            print(t["functions"], [s.get("score") for s in res["scores"]], file=sys.stderr)
        doc = {
            "torch": torch.__version__,
            "amm_commit": "0f0ffb2e07762c64238adcca550474035d354066",
            "pythonhashseed": HASH_SEED,
            "threads": 1,
            "tasks": results,
        }
        with open(os.path.join(OUT, "tasks.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
