"""PyTorch peer of benches/jit.rs: loss + gradient of the same genomes on the same inputs,
computed the way the seed systems do it (AMM's register interpreter over eager PyTorch ops,
then autograd), and, for reference, the same loss written directly as eager torch ops.
Prints JSON: {"<path>/<genome>/<b>x<c>": seconds per call}.

    AMM_REPO=/path/to/AutoML-Miner python benches/peers/loss_eval.py

AMM_REPO is a checkout of the public AMM repository (tests/reference/README.md names the
commit); this script imports its interpreter, it does not copy it. One thread, CPU.
"""
import json
import logging
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GENOMES = ["mse", "cross_entropy", "baikal"]
SHAPES = [(32, 10), (256, 10), (100_000, 10)]


def inputs(b, c):
    """The inputs benches/jit.rs uses."""
    k = torch.arange(b * c)
    yp = (((k // c) * 7 + (k % c) * 3) % 11).float() / 5.0 - 1.0
    yt = ((k % c) == ((k // c) % c)).float()
    return yp.reshape(b, c), yt.reshape(b, c)


def amm_loss(name):
    sys.path.insert(0, os.environ["AMM_REPO"])
    from automl_client.genetic.interpreter import GeneticInterpreter

    logging.disable(logging.CRITICAL)
    prog = json.load(open(f"{ROOT}/tests/corpus/amm/{name}.json"))
    fn = GeneticInterpreter.decode_to_function(prog)
    return lambda yp, yt: fn(yt, yp)


def direct_loss(name):
    eps = 1e-7
    if name == "mse":
        return lambda yp, yt: ((yt - yp) ** 2).mean(dim=-1).mean()
    if name == "cross_entropy":
        return lambda yp, yt: (-(yt * torch.log(torch.clamp(torch.softmax(yp, -1), min=eps))).sum(-1)).mean()
    return lambda yp, yt: (-(torch.log(torch.clamp(torch.softmax(yp, -1), min=eps)) - yt / (torch.softmax(yp, -1) + eps))).mean()


def time_call(loss, b, c):
    yp0, yt = inputs(b, c)
    n = 3 if b * c >= 1_000_000 else 300

    def once():
        yp = yp0.clone().requires_grad_(True)
        out = loss(yp, yt)
        out = out.mean() if out.numel() != 1 else out
        out.backward()

    for _ in range(max(1, n // 10)):
        once()
    t = time.perf_counter()
    for _ in range(n):
        once()
    return (time.perf_counter() - t) / n


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = {}
    for g in GENOMES:
        for b, c in SHAPES:
            if "AMM_REPO" in os.environ:
                out[f"amm_eager/{g}/{b}x{c}"] = time_call(amm_loss(g), b, c)
            out[f"torch_eager/{g}/{b}x{c}"] = time_call(direct_loss(g), b, c)
    print(json.dumps(out))
