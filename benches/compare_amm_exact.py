"""AMM-exact scoring against AMM's own code, in one run on this machine: functions scored per
second for whole evaluate tasks, one thread each (torch.set_num_threads(1); RAYON_NUM_THREADS=1).

Each task is the five library losses of the corpus, once each, in a fresh process for both
systems (so AMM's process-wide score cache starts empty, as on a fresh miner). AMM's time is
measured inside its process around the evaluation loop only (imports, data loading and
torch's start-up are left out); ncpc's is the whole `ncpc eval --protocol amm-exact` process,
start-up and data included. The scores of both are printed side by side.

    AMM_REPO=/path/to/AutoML-Miner python3 benches/compare_amm_exact.py --python /path/to/python-with-torch [--tasks 3]
        [--component activation]

With `--component activation` each task is five working activations (relu, sigmoid, tanh,
swish, leaky ReLU as AMM register programs), scored by AMM's ActivationStrategy and by
`ncpc eval --protocol amm-exact --component activation`.

Builds nothing: run `cargo build --release` first. The figure that counts is the same-run
ratio (the machine is shared and noisy).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENOMES = ["mse", "cross_entropy", "baikal", "bce", "mae"]
ACTIVATIONS = {
    "relu": "[[100,1,0],[100,2,1],[250,1,9],[453,9]]",
    "sigmoid": "[[100,1,0],[100,2,1],[251,1,9],[453,9]]",
    "tanh": "[[100,1,0],[100,2,1],[252,1,9],[453,9]]",
    "swish": "[[100,1,0],[100,2,1],[251,1,0,3],[3,1,3,9],[453,9]]",
    "leaky": "[[100,1,0],[100,2,1],[21,1,0.01,3],[300,1,3,9],[453,9]]",
}

CHILD = r"""
import json, math, os, sys, time
sys.path.insert(0, os.environ["NCPC_ROOT"] + "/tests/reference")
import gen_amm_exact as g
import torch
torch.set_num_threads(1)
import logging
logging.disable(logging.CRITICAL)
sys.path.insert(0, os.environ["AMM_REPO"])
from automl_client.data.dataset_factory import DatasetFactory
from automl_client.components.loss.strategy import LossStrategy
from automl_client.genetic.serialize import deserialize_genetic_code
DatasetFactory._load_mnist = staticmethod(g.patched_load_mnist)
if os.environ.get("COMPONENT") == "activation":
    from automl_client.components.activation.strategy import ActivationStrategy
    strategy = ActivationStrategy()
else:
    strategy = LossStrategy()
programs = json.load(sys.stdin)
scores = []
t0 = time.perf_counter()
for text in programs:
    try:
        s = strategy.evaluate(deserialize_genetic_code(text), stop_flag=None)
        low = s is None or math.isnan(s) or (math.isinf(s) and s < 0)
        scores.append(-99999.0 if low else float(s))
    except Exception:
        scores.append(0.0)
print(json.dumps({"seconds": time.perf_counter() - t0, "scores": scores}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--tasks", type=int, default=3)
    ap.add_argument("--ncpc", default=os.path.join(ROOT, "target/release/ncpc"))
    ap.add_argument("--component", choices=["loss", "activation"], default="loss")
    a = ap.parse_args()
    if a.component == "activation":
        import tempfile
        tmp = tempfile.mkdtemp()
        files = []
        for name, prog in ACTIVATIONS.items():
            files.append(os.path.join(tmp, f"{name}.json"))
            with open(files[-1], "w") as f:
                f.write(prog)
    else:
        files = [os.path.join(ROOT, "tests/corpus/amm", f"{n}.json") for n in GENOMES]
    programs = [open(f).read() for f in files]
    env = dict(os.environ, NCPC_ROOT=ROOT, PYTHONHASHSEED="0", OMP_NUM_THREADS="1",
               COMPONENT=a.component)
    amm_s, ncpc_s = 0.0, 0.0
    for _ in range(a.tasks):
        out = subprocess.run([a.python, "-c", CHILD], input=json.dumps(programs),
                             capture_output=True, text=True, check=True, env=env)
        amm = json.loads(out.stdout.strip().splitlines()[-1])
        amm_s += amm["seconds"]
        t0 = time.perf_counter()
        out = subprocess.run([a.ncpc, "eval", "--protocol", "amm-exact", "--component",
                              a.component, *files, "--json"],
                             capture_output=True, text=True, check=True,
                             env=dict(os.environ, RAYON_NUM_THREADS="1"))
        ncpc_s += time.perf_counter() - t0
        ours = json.loads(out.stdout)
        ours = ours if isinstance(ours, list) else ours.get("results", ours)
        print("scores AMM :", " ".join(f"{s:.4f}" for s in amm["scores"]))
        print("scores ncpc:", " ".join(f"{e['score']:.4f}" for e in ours))
    n = a.tasks * len(programs)
    print(f"AMM  (PyTorch, 1 thread): {n / amm_s:8.1f} functions/s ({amm_s:.2f} s for {n})")
    print(f"ncpc (amm-exact, 1 thread, whole process): {n / ncpc_s:8.1f} functions/s ({ncpc_s:.2f} s)")
    print(f"ratio: {amm_s / ncpc_s:.1f}x")


if __name__ == "__main__":
    main()
