"""PyTorch peer of `ncpc eval --protocol amm`: the AMM client's loss-evaluation protocol run
the way AMM runs it (its register interpreter over eager PyTorch ops, autograd, torch.optim
Adam), on the same data, over several seeds. Prints JSON:
{"<genome>": {"runs": [{"seed": s, "accuracy": a | null, "failure": str | null}], "seconds": t}}.

    AMM_REPO=/path/to/AutoML-Miner python benches/peers/amm_protocol.py --seeds 20 [genome ...]

AMM_REPO is a checkout of the public AMM repository; this script imports its interpreter, it
does not copy it. Protocol, as automl_client/components/loss/strategy.py and
data/dataset_factory.py define it: the first 2000 MNIST training images, ToTensor and
Normalize(0.1307, 0.3081), flattened, one-hot targets, split 1800/200 by torch.randperm after
torch.manual_seed(42); model Linear(784, 64), ReLU, Linear(64, 10); Adam lr 1e-3; 10 steps on
batches drawn with torch.randint; early stop after 3 steps without the loss improving by 0.001;
a NaN/inf loss or an exception fails the candidate; fitness is validation accuracy.

Two of AMM's defects are fixed so that runs are comparable: the model is freshly initialised
for every candidate (seed s), and batches come from a generator seeded s. Threads: torch's
default unless --threads is given.
"""
import argparse
import gzip
import json
import logging
import os
import struct
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMBEDDED = os.path.join(ROOT, "src/train/data/embedded")


def idx(path):
    data = gzip.open(path).read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def dataset():
    x = idx(f"{EMBEDDED}/mnist-train-2000-images-idx3-ubyte.gz").float() / 255.0
    y = idx(f"{EMBEDDED}/mnist-train-2000-labels-idx1-ubyte.gz").long()
    x = ((x - 0.1307) / 0.3081).reshape(2000, -1)
    onehot = torch.zeros(2000, 10)
    onehot.scatter_(1, y.unsqueeze(1), 1)
    torch.manual_seed(42)
    perm = torch.randperm(2000)
    tr, va = perm[:1800], perm[1800:]
    return x[tr], onehot[tr], x[va], onehot[va]


def run_once(interp_cls, program, data, seed):
    train_x, train_y, val_x, val_y = data
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    interp = interp_cls()
    try:
        interp.load_program(program)
    except Exception as e:  # AMM: a program that does not load scores -inf
        return None, f"load: {e}"
    best, stale = float("inf"), 0
    for step in range(10):
        idx_ = torch.randint(0, train_x.size(0), (32,), generator=gen, device="cpu")
        bx, by = train_x[idx_], train_y[idx_]
        opt.zero_grad()
        pred = model(bx)
        try:
            interp.initialize(inputs={"y_true": by, "y_pred": pred})
            loss = interp.execute()
            loss = loss.mean() if loss.numel() != 1 else loss
            if torch.isnan(loss) or torch.isinf(loss):
                return None, f"step {step + 1}: loss {loss.item()}"
            loss.backward()
            opt.step()
        except Exception as e:
            return None, f"step {step + 1}: {type(e).__name__}"
        v = loss.item()
        if v < best - 0.001:
            best, stale = v, 0
        else:
            stale += 1
            if stale >= 3:
                return None, f"step {step + 1}: early stop"
    with torch.no_grad():
        acc = (model(val_x).argmax(1) == val_y.argmax(1)).float().mean().item()
    return acc, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default, as the AMM client runs)")
    ap.add_argument("--device", default="cpu",
                    help="torch device (cuda: AMM's code on the GPU, as a GPU miner runs it)")
    ap.add_argument("genomes", nargs="*", default=["mse", "cross_entropy", "baikal", "bce", "mae"])
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    sys.path.insert(0, os.environ["AMM_REPO"])
    from automl_client.genetic.interpreter import GeneticInterpreter

    logging.disable(logging.CRITICAL)
    data = dataset()
    if a.device != "cpu":
        torch.set_default_device(a.device)
        data = tuple(t.to(a.device) for t in data)
    # Warm up (first-call costs of torch and the interpreter are not the protocol's).
    run_once(GeneticInterpreter, [[100, 1, 0], [100, 2, 1], [350, 1, 2, 9], [453, 9]], data, 0)
    out = {}
    for g in a.genomes:
        path = g if os.path.exists(g) else f"{ROOT}/tests/corpus/amm/{g}.json"
        program = json.load(open(path))
        t0 = time.perf_counter()
        runs = []
        for s in range(a.first_seed, a.first_seed + a.seeds):
            acc, why = run_once(GeneticInterpreter, program, data, s)
            runs.append({"seed": s, "accuracy": acc, "failure": why})
        out[os.path.basename(path).removesuffix(".json")] = {
            "runs": runs,
            "seconds": time.perf_counter() - t0,
        }
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
