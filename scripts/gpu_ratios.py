"""One JSON summary of a gpu-check.sh output folder, every ratio from the same run:
- kernels: benches/population_kernels.rs's resident timings (kernels.json) against the PyTorch
  peer's loss+grad rate (peer.json: AMM's interpreter on CUDA over the same rows);
- population: criterion's estimates for benches/population.rs (training on wgpu) against the
  peer's AMM-protocol candidates/s;
- eval: `ncpc eval --backend wgpu|jit` results per case (amm, long, cnn; wgpu_graph:
  `--loss-step graph`) and the same-run time ratios.
A part that did not run is reported with the reason instead of a number."""
import glob
import json
import os
import sys

out = sys.argv[1]
summary = {}


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception as e:  # a step may have failed; report what there is
        return {"error": f"{name}: {e}"}


peer = load("peer.json")
summary["peer"] = peer
their = (peer.get("loss+grad") or {}).get("elements_per_s")
kernels = load("kernels.json")
if isinstance(kernels, list):
    for k in kernels:
        if their:
            k["vs_pytorch"] = k["elements_per_s"] / their
        k["target_3e11"] = k["elements_per_s"] >= 3e11
summary["kernels"] = kernels
training = []
for est in sorted(glob.glob(os.path.join(out, "criterion", "population", "*", "*", "new", "estimates.json"))):
    bench = json.load(open(os.path.join(os.path.dirname(est), "benchmark.json")))
    seconds = json.load(open(est))["mean"]["point_estimate"] / 1e9
    units = (bench.get("throughput") or {}).get("Elements", 0)
    row = {"bench": bench["function_id"], "size": bench["value_str"], "per_s": units / seconds}
    theirs = peer.get(bench["function_id"], {}) if isinstance(peer, dict) else {}
    rate = theirs.get("elements_per_s") or theirs.get("candidates_per_s")
    if rate:
        row["vs_pytorch"] = row["per_s"] / rate
    training.append(row)
summary["population_training"] = training
summary["eval"] = {}
for path in sorted(glob.glob(os.path.join(out, "eval_*.json"))):
    name = os.path.basename(path)[len("eval_"):-len(".json")]
    r = load(os.path.basename(path))
    keep = ["error", "model", "score", "accuracy", "seconds"]
    summary["eval"][name] = {k: r[k] for k in keep if k in r}
# The kernel step against the graph step and the JIT, same protocol, same run.
for case in ["amm", "long", "cnn"]:
    ev = summary["eval"]
    k, g, j = (ev.get(f"{case}_{x}", {}).get("seconds") for x in ["wgpu", "wgpu_graph", "jit"])
    if k and g:
        ev[f"{case}_graph_over_kernel"] = g / k
    if k and j:
        ev[f"{case}_jit_over_kernel"] = j / k
print(json.dumps(summary, indent=1, default=str))
