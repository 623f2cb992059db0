#!/usr/bin/env bash
# The GPU machine's check, one run under 8 minutes: builds nothing (scripts/gpu-prepare.sh
# builds here and lays out target/gpu-carry), prints one JSON summary last and writes every log
# under OUT.
#
#   bash scripts/gpu-check.sh [CARRY] [OUT]    # CARRY: target/gpu-carry; OUT: $OUT or a temp dir
#
# NCPC_BENCH_RESIDENT_K and NCPC_BENCH_RESIDENT_ROWS pass through to the kernel bench (a dry
# run on lavapipe needs small sizes).
#
# 1. Vulkan: unpacks the carried loader and libglvnd (dpkg -x, ldconfig; as root on the lent
#    machine only), and points the loader at the NVIDIA ICD if it finds no driver.
# 2. CUDA: NVRTC from the pip package nvidia-cuda-nvrtc when it is not on the loader's path.
# 3. Population kernels (benches/population_kernels.rs): K = 64 losses over [1e6, 10], kernel
#    alone with the batch on the device, on CUDA and on wgpu; PyTorch's peer
#    (benches/peers/gpu_population.py: AMM's interpreter on CUDA, the same losses and rows).
# 4. `ncpc eval --backend wgpu` (the losses' step on the population kernel, then as burn
#    graphs) against `--backend jit`: the AMM protocol, a longer run (NCPC_CHECK_STEPS, default
#    300 steps of 256) and the small CNN; benches/population.rs (population training, both
#    loss steps) on wgpu.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY="${1:-target/gpu-carry}"
OUT="${2:-${OUT:-$(mktemp -d)}}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
PY="${PYTHON:-python3}"
bin="$(mktemp -d)"
for b in ncpc population population_kernels; do
  xz -dc "$CARRY/$b.xz" >"$bin/$b" && chmod +x "$bin/$b"
done

echo "== vulkan"
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 ' || ! ldconfig -p | grep -q 'libGLX.so.0 '; then
  # Only on the lent GPU machine (root, NVIDIA driver present): unpacking into / elsewhere
  # could replace a system's own libraries.
  if [ "$(id -u)" = 0 ] && command -v nvidia-smi >/dev/null && compgen -G "$CARRY/gl/*.deb" >/dev/null; then
    for f in "$CARRY"/gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    echo "unpacked $(ls "$CARRY"/gl/*.deb | wc -l) carried packages"
  fi
fi
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if ! compgen -G '/usr/share/vulkan/icd.d/nvidia*' >/dev/null && ! compgen -G '/etc/vulkan/icd.d/nvidia*' >/dev/null \
  && [ -e "$nv_icd" ]; then
  export VK_DRIVER_FILES="$nv_icd"
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  echo "VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi

echo "== cuda"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc.so'; then
  nvrtc="$("$PY" -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null)"
  if [ -n "$nvrtc" ]; then
    export LD_LIBRARY_PATH="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "NVRTC from $nvrtc"
  fi
fi

echo "== population kernels: K=64 x [1e6, 10], kernel alone (CUDA, wgpu)"
NCPC_BENCH_K=8 NCPC_BENCH_ROWS=100000 NCPC_BENCH_JSON="$OUT/kernels.json" CRITERION_HOME="$OUT/criterion" \
  timeout 150 "$bin/population_kernels" --bench >"$OUT/kernels.log" 2>&1
grep -E 'resident|thrpt' "$OUT/kernels.log" | head -12

echo "== peer: PyTorch (AMM's interpreter) on CUDA, the same losses"
AMM_REPO="$CARRY/amm" timeout 150 "$PY" benches/peers/gpu_population.py --device cuda \
  --rows 1000000 --k-loss 64 --k-amm 16 >"$OUT/peer.json" 2>"$OUT/peer.err" || tail -n 5 "$OUT/peer.err"

echo "== eval: wgpu (loss step on the kernel, then as graphs) vs jit, 8 seeds of cross-entropy"
# amm: the AMM protocol (10 steps of 32, early stop: the kernel's build decides); long: the
# standard protocol (no early stop) for NCPC_CHECK_STEPS (default 300) steps of 256, where the
# steps decide; cnn: the small CNN (burn only) under the standard protocol, as many steps.
steps="${NCPC_CHECK_STEPS:-300}"
for run in amm_wgpu:kernel amm_wgpu_graph:graph amm_jit:kernel long_wgpu:kernel long_wgpu_graph:graph \
  long_jit:kernel cnn_wgpu:kernel cnn_wgpu_graph:graph; do
  name="${run%%:*}"; step="${run##*:}"; case="${name%%_*}"; backend="${name#*_}"; backend="${backend%%_*}"
  extra=(--protocol amm)
  [ "$case" = long ] && extra=(--protocol standard --steps "$steps" --batch 256)
  [ "$case" = cnn ] && extra=(--protocol standard --steps "$steps" --model cnn)
  timeout 90 "$bin/ncpc" eval tests/corpus/amm/cross_entropy.json --seeds 8 \
    --no-baselines --backend "$backend" --loss-step "$step" "${extra[@]}" --json \
    >"$OUT/eval_$name.json" 2>"$OUT/eval_$name.err"
  echo "$name: exit $?"; grep -m 3 -E 'ncpc:|adapter|WARN' "$OUT/eval_$name.err"
done

echo "== population training on wgpu (benches/population.rs)"
CRITERION_HOME="$OUT/criterion" NCPC_BENCH_DEVICE=wgpu timeout 180 "$bin/population" --bench \
  >"$OUT/population.log" 2>&1
grep -E 'population/|thrpt' "$OUT/population.log" | head -12

echo "== summary"
"$PY" scripts/gpu_ratios.py "$OUT" | tee "$OUT/summary.json"
