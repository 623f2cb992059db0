"""Throughput and ratios from a gpu-check.sh output folder: criterion's estimates for
benches/population.rs against the PyTorch peer's JSON, both measured in the same run."""
import glob
import json
import os
import sys

out = sys.argv[1]
peer = {}
try:
    peer = json.load(open(os.path.join(out, "peer.json")))
except Exception as e:  # the peer may have failed; report what there is
    print(f"peer: no result ({e})")
print(f"peer device: {peer.get('device', '?')}")
for est in sorted(glob.glob(os.path.join(out, "criterion", "population", "*", "*", "new", "estimates.json"))):
    bench = json.load(open(os.path.join(os.path.dirname(est), "benchmark.json")))
    seconds = json.load(open(est))["mean"]["point_estimate"] / 1e9
    units = (bench.get("throughput") or {}).get("Elements", 0)
    rate = units / seconds
    kind = bench["function_id"]
    theirs = peer.get(kind, {})
    their = theirs.get("elements_per_s") or theirs.get("candidates_per_s")
    unit = "candidates/s" if kind == "amm" else "elements/s"
    line = f"{kind:10} {bench['value_str']:28} ncpc {rate:10.3e} {unit}"
    if their:
        line += f"   pytorch {their:10.3e}   ratio {rate / their:7.2f}x"
    print(line)
for b in ["wgpu", "jit"]:
    try:
        r = json.load(open(os.path.join(out, f"eval_{b}.json")))
        print(f"eval {b:5} accuracy {r['accuracy']:.4f} score {r['score']:.4f} seconds {r['seconds']:.2f}")
    except Exception as e:
        print(f"eval {b}: no result ({e})")
