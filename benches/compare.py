"""One command for the JIT benchmark table: runs `cargo bench --bench jit` and the PyTorch
peer (benches/peers/loss_eval.py) on this machine, then prints ratios.

    AMM_REPO=/path/to/AutoML-Miner python3 benches/compare.py [--python /path/to/python-with-torch]

Ratios are peer time / ncpc time, measured in the same run: the machine is shared and noisy,
so absolute numbers mean little and ratios are what to compare.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cargo_bench():
    out = subprocess.run(
        ["cargo", "bench", "--bench", "jit", "--", "--output-format", "bencher"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    res = {}
    for m in re.finditer(r"^test (\S+) \.\.\. bench:\s+([\d,]+) ns/iter", out, re.M):
        res[m.group(1)] = int(m.group(2).replace(",", "")) * 1e-9
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable, help="a Python with torch installed")
    a = ap.parse_args()
    peer = json.loads(subprocess.run([a.python, os.path.join(ROOT, "benches/peers/loss_eval.py")],
                                     capture_output=True, text=True, check=True).stdout)
    ncpc = cargo_bench()
    print("Per call (the hot tier: what a loss that keeps training runs)")
    print("| genome | shape | torch eager (seed path) | torch eager (direct) | ncpc interp | ncpc jit (exact) | ncpc jit (fast) | seed / jit | direct / jit | seed / jit fast |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for g in ["mse", "cross_entropy", "baikal"]:
        for shape in ["32x10", "256x10"]:
            seed = peer.get(f"amm_eager/{g}/{shape}")
            direct = peer[f"torch_eager/{g}/{shape}"]
            interp = ncpc.get(f"loss_grad_{shape}/interp/{g}")
            jit = ncpc[f"loss_grad_{shape}/jit/{g}"]
            fast = ncpc[f"loss_grad_{shape}/jit_fast/{g}"]
            us = lambda t: f"{t * 1e6:.1f} us" if t else "-"
            r = lambda t, d=jit: f"{t / d:.1f}x" if t else "-"
            print(f"| {g} | {shape} | {us(seed)} | {us(direct)} | {us(interp)} | {us(jit)} | {us(fast)} | {r(seed)} | {r(direct)} | {r(seed, fast)} |")
    print()
    print(f"| genome | elements/s at 1M (100000x10), loss + gradient | torch eager (direct, 1 thread) | ncpc jit exact | exact / torch | exact, row blocks on {os.cpu_count()} cores | blocks / one core | ncpc jit fast | fast / torch | fast, row blocks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for g in ["mse", "cross_entropy", "baikal"]:
        t = peer[f"torch_eager/{g}/100000x10"]
        j = ncpc[f"throughput_1M/jit/{g}"]
        jp = ncpc[f"throughput_1M/jit_parallel/{g}"]
        jf = ncpc[f"throughput_1M/jit_fast/{g}"]
        jfp = ncpc[f"throughput_1M/jit_fast_parallel/{g}"]
        print(f"| {g} | | {1e6 / t:.3g} | {1e6 / j:.3g} | {t / j:.1f}x | {1e6 / jp:.3g} | {j / jp:.2f}x | {1e6 / jf:.3g} | {t / jf:.1f}x | {1e6 / jfp:.3g} |")
    print()
    print("| compile latency (gradient + optimize + Cranelift) | fresh compiler, quick tier | kernel only, quick tier | kernel only, hot tier |")
    print("| --- | --- | --- | --- |")
    for n in [10, 30, 100]:
        ms = lambda k: f"{ncpc[k] * 1e3:.3f} ms"
        print(f"| {n} instructions | {ms(f'compile/jit/{n}_instructions')} | {ms(f'compile/kernel/{n}_instructions')} | {ms(f'compile/kernel_hot/{n}_instructions')} |")


if __name__ == "__main__":
    main()
