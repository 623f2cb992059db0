"""AMM protocol, ncpc against AMM's own approach (PyTorch eager + AMM's interpreter), in one
run on this machine: validation accuracy per genome over the same seeds (ncpc must land within
seed noise of PyTorch) and candidate evaluations per second: one thread each, and each system as it runs by default
(PyTorch with its own thread pool, as the AMM client runs it; ncpc with one candidate run per
core).

    AMM_REPO=/path/to/AutoML-Miner python3 benches/compare_amm.py --python /path/to/python-with-torch [--seeds 20]

Builds nothing: run `cargo build --release` first. Ratios are ncpc / PyTorch candidates per
second measured in the same run (the machine is shared and noisy; compare ratios).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENOMES = ["mse", "cross_entropy", "baikal", "bce", "mae"]


def summarize(runs):
    accs = [r["accuracy"] for r in runs if r["accuracy"] is not None and not r["failure"]]
    stopped = sum(1 for r in runs if r["failure"])
    if not accs:
        return "all failed", stopped
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return f"{statistics.mean(accs):.3f} ± {sd:.3f}", stopped


def ncpc_runs(binary, genome, seeds, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    path = f"{ROOT}/tests/corpus/amm/{genome}.json"
    t0 = time.perf_counter()
    out = subprocess.run([binary, "eval", path, "--protocol", "amm", "--seeds", str(seeds),
                          "--no-baselines", "--json"], capture_output=True, text=True, check=True, env=env)
    wall = time.perf_counter() - t0
    r = json.loads(out.stdout)
    runs = [{"seed": x["seed"], "accuracy": x["accuracy"] if isinstance(x["accuracy"], float) else None,
             "failure": x["failure"]} for x in r["candidate"]["runs"]]
    return runs, r["seconds"], wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable, help="a Python with torch installed")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release/ncpc"))
    a = ap.parse_args()
    def peer(threads):
        return json.loads(subprocess.run(
            [a.python, os.path.join(ROOT, "benches/peers/amm_protocol.py"), "--seeds", str(a.seeds),
             "--threads", str(threads), *GENOMES],
            capture_output=True, text=True, check=True).stdout)
    one, default = peer(1), peer(0)
    cores = os.cpu_count() or 1
    print(f"AMM protocol, {a.seeds} seeds (42..); accuracy = mean ± sd over runs that were not stopped; {cores} cores")
    print("| genome | PyTorch accuracy | stopped | ncpc accuracy | stopped | PyTorch cand/s (1 thread) | ncpc cand/s (1 thread) | ratio | PyTorch cand/s (default threads, as AMM runs) | ncpc cand/s (rayon, all cores) | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for g in GENOMES:
        runs, secs, _ = ncpc_runs(a.binary, g, a.seeds, 1)
        _, secs_all, _ = ncpc_runs(a.binary, g, a.seeds, cores)
        pa, ps = summarize(one[g]["runs"])
        na, ns = summarize(runs)
        p1, pd = a.seeds / one[g]["seconds"], a.seeds / default[g]["seconds"]
        n1, nall = a.seeds / secs, a.seeds / secs_all
        print(f"| {g} | {pa} | {ps} | {na} | {ns} | {p1:.0f} | {n1:.0f} | {n1 / p1:.1f}x | {pd:.0f} | {nall:.0f} | {nall / pd:.1f}x |")


if __name__ == "__main__":
    main()
