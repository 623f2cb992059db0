"""PyTorch peer of benches/population.rs: the same work done the way the seed systems do it
on a GPU (AMM's register interpreter over eager PyTorch ops, one candidate at a time).

- loss: K losses (the same AMM programs, cycled) evaluated on one shared [rows, 10] batch,
  then one synchronisation; and the same with autograd's dL/dy_pred. Throughput in elements
  (K x rows x 10 per population).
- amm: K candidates under the AMM protocol, each trained on its own (benches/peers/
  amm_protocol.py's run_once); throughput in candidates.

Prints JSON: {"loss": {"elements_per_s": ..}, "loss+grad": {..}, "amm": {"candidates_per_s": ..}}.

    AMM_REPO=/path/to/AutoML-Miner python benches/peers/gpu_population.py --device cuda

AMM_REPO is a checkout of the public AMM repository; this script imports its interpreter, it
does not copy it.
"""
import argparse
import json
import logging
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from loss_eval import amm_loss, inputs  # noqa: E402  (the same inputs as the Rust benches)
import amm_protocol  # noqa: E402

GENOMES = ["mse", "cross_entropy", "baikal", "mae"]


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_it(fn, device, min_seconds=2.0):
    fn()  # warm-up
    sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        sync(device)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return dt / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--k-loss", type=int, default=16)
    ap.add_argument("--k-amm", type=int, default=64)
    a = ap.parse_args()
    logging.disable(logging.CRITICAL)
    data = tuple(t.to(a.device) for t in amm_protocol.dataset())
    torch.set_default_device(a.device)
    fns = [amm_loss(GENOMES[i % len(GENOMES)]) for i in range(a.k_loss)]
    yp, yt = inputs(a.rows, 10)
    yp, yt = yp.to(a.device), yt.to(a.device)
    out = {"device": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"}
    elements = a.k_loss * a.rows * 10

    def loss_only():
        with torch.no_grad():
            v = torch.stack([f(yp, yt).reshape(()) for f in fns])
        return v.cpu()

    def loss_grad():
        p = yp.clone().requires_grad_(True)
        v = torch.stack([f(p, yt).reshape(()) for f in fns])
        v.sum().backward()
        return v.detach().cpu(), p.grad.sum().cpu()

    for name, fn in [("loss", loss_only), ("loss+grad", loss_grad)]:
        s = time_it(fn, a.device)
        out[name] = {"seconds": s, "elements_per_s": elements / s}

    sys.path.insert(0, os.environ["AMM_REPO"])
    from automl_client.genetic.interpreter import GeneticInterpreter

    programs = [json.load(open(f"{amm_protocol.ROOT}/tests/corpus/amm/{g}.json")) for g in GENOMES]
    amm_protocol.run_once(GeneticInterpreter, programs[0], data, 0)  # warm-up
    sync(a.device)
    t0 = time.perf_counter()
    for i in range(a.k_amm):
        amm_protocol.run_once(GeneticInterpreter, programs[i % len(programs)], data, 42 + i)
    sync(a.device)
    s = time.perf_counter() - t0
    out["amm"] = {"seconds": s, "candidates_per_s": a.k_amm / s}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
