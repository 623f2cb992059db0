"""PyTorch peer of benches/interp.rs: loss + gradient of the same genomes at B=32, C=10,
computed the way the public systems do (AMM's interpreter / DAML's primitive set, eager mode,
then backward). Prints mean microseconds per evaluation.

    AMM_REPO=/path/to/AutoML-Miner DAML_REPO=/path/to/DistributedAutoML python benches/peers/loss_eval.py

The AMM and DAML paths are checkouts of the public repositories (see tests/reference/README.md
for the commits); this script imports their code, it does not copy it.
"""
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def inputs(b=32, c=10):
    yp = torch.tensor([[((i * 7 + j * 3) % 11) / 5.0 - 1.0 for j in range(c)] for i in range(b)])
    yt = torch.tensor([[1.0 if j == i % c else 0.0 for j in range(c)] for i in range(b)])
    return yp, yt


def amm_loss(path):
    sys.path.insert(0, os.environ["AMM_REPO"])
    from automl_client.genetic.interpreter import GeneticInterpreter
    import logging
    logging.disable(logging.CRITICAL)
    prog = json.load(open(path))
    fn = GeneticInterpreter.decode_to_function(prog)
    return lambda yp, yt: fn(yt, yp)


def daml_loss(path):
    sys.path.insert(0, os.environ["DAML_REPO"])
    import types
    cfg = types.ModuleType("dml.configs.config")
    cfg.config = types.SimpleNamespace(device="cpu")
    sys.modules["dml.configs.config"] = cfg
    from dml import ops
    pset = ops.create_pset_validator()
    data = json.load(open(path))
    if isinstance(data, str):
        data = json.loads(data)
    env = {name: prim for name, prim in pset.context.items()}
    env["tensor"] = torch.tensor
    expr = data["expression"]
    return lambda yp, yt: eval(expr, dict(env, x=yp, y=yt))


def bench(name, loss, n=2000):
    yp0, yt = inputs()
    for _ in range(50):
        yp = yp0.clone().requires_grad_(True)
        out = loss(yp, yt)
        out = out.mean() if out.numel() != 1 else out
        out.backward()
    t = time.perf_counter()
    for _ in range(n):
        yp = yp0.clone().requires_grad_(True)
        out = loss(yp, yt)
        out = out.mean() if out.numel() != 1 else out
        out.backward()
    dt = (time.perf_counter() - t) / n
    print(f"peer_loss_grad/{name}: {dt * 1e6:.1f} us")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for g in ["mse", "cross_entropy", "baikal"]:
        bench(g, amm_loss(f"{ROOT}/tests/corpus/amm/{g}.json"))
    bench("evolved_baseline_loss", daml_loss(f"{ROOT}/tests/corpus/daml/evolved_baseline_loss.json"))
