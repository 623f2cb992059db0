#!/usr/bin/env bash
# GPU device check for the wgpu backend. Builds nothing: the GPU machine has no package
# registries, so build here and carry the binaries (scripts/gpu-prepare.sh lays them out).
#
#   scripts/gpu-prepare.sh                 # here: release build with --features wgpu
#   scripts/gpu-check.sh [DIR] [OUT]       # there: DIR holds ncpc, population, amm/ (or
#                                          # target/gpu-carry's ncpc.xz, population.xz, lib/)
#
# Prints the GPU, checks `ncpc eval --backend wgpu` against the CPU path on the AMM protocol,
# runs benches/population.rs on wgpu and its PyTorch peer (benches/peers/gpu_population.py)
# on CUDA, and prints throughput and ratios. Fits in about 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-target/gpu-check}"
OUT="${2:-${OUT:-$(mktemp -d)}}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
PY="${PYTHON:-python3}"

# Compressed binaries (target/gpu-carry) are unpacked into a scratch dir first.
if [ ! -x "$DIR/ncpc" ] && [ -e "$DIR/ncpc.xz" ]; then
  bin="$(mktemp -d)"
  "$PY" - "$DIR" "$bin" <<'PYEOF'
import lzma, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for name in ["ncpc", "population"]:
    with lzma.open(os.path.join(src, name + ".xz")) as f, open(os.path.join(dst, name), "wb") as g:
        shutil.copyfileobj(f, g)
    os.chmod(os.path.join(dst, name), 0o755)
PYEOF
  if [ -d "$DIR/amm" ]; then ln -s "$(cd "$DIR" && pwd)/amm" "$bin/amm"; fi
  if [ -d "$DIR/lib" ] && ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then
    export LD_LIBRARY_PATH="$(cd "$DIR/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "using the carried Vulkan loader"
  fi
  DIR="$bin"
fi
# No NVIDIA Vulkan ICD file but the driver's GLX library present: point the loader at it.
if ! compgen -G '/usr/share/vulkan/icd.d/nvidia*' >/dev/null && ! compgen -G '/etc/vulkan/icd.d/nvidia*' >/dev/null; then
  glx="$(ldconfig -p 2>/dev/null | sed -n 's/.*libGLX_nvidia.so.0 .*=> //p' | head -n 1)"
  if [ -n "$glx" ]; then
    icd="$(mktemp -d)/nvidia_icd.json"
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$glx" >"$icd"
    export VK_ICD_FILENAMES="$icd"
    echo "no NVIDIA Vulkan ICD file; using $glx"
  fi
fi

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4
echo "vulkan ICDs: $(ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | tr '\n' ' ')"
for f in /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia*; do [ -e "$f" ] && tr -d '\n ' <"$f" && echo; done
echo "vulkan loader: $(ldconfig -p 2>/dev/null | grep -c 'libvulkan.so.1 ') system; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

echo "== eval: AMM protocol, 8 seeds, wgpu vs the CPU path (jit)"
for b in wgpu jit; do
  timeout 150 "$DIR/ncpc" eval tests/corpus/amm/cross_entropy.json --protocol amm --seeds 8 \
    --no-baselines --backend "$b" --json >"$OUT/eval_$b.json" 2>"$OUT/eval_$b.err"
  rc=$?
  echo "$b: exit $rc"
  grep -m 3 -E 'ncpc:|Unable|adapter' "$OUT/eval_$b.err"
  if [ "$rc" != 0 ] && [ "$b" = wgpu ]; then
    VK_LOADER_DEBUG=error,warn,driver timeout 60 "$DIR/ncpc" eval tests/corpus/amm/mse.json \
      --protocol amm --seeds 1 --no-baselines --backend wgpu 2>&1 | grep -v '^ ' | head -n 25
  fi
done

echo "== bench: benches/population.rs on wgpu"
CRITERION_HOME="$OUT/criterion" NCPC_BENCH_DEVICE=wgpu timeout 200 "$DIR/population" --bench \
  2>&1 | grep -E 'population/|time:|thrpt:|rror|panic' | head -40

echo "== peer: benches/peers/gpu_population.py on cuda"
AMM_REPO="$DIR/amm" timeout 200 "$PY" benches/peers/gpu_population.py --device cuda \
  >"$OUT/peer.json" 2>"$OUT/peer.err" || tail -n 20 "$OUT/peer.err"

echo "== ratios"
"$PY" scripts/gpu_ratios.py "$OUT"
