#!/usr/bin/env bash
# Build what scripts/gpu-check.sh runs on a GPU machine (release, --features wgpu) and lay it
# out under target/gpu-check: ncpc, the population bench binary, and AMM's interpreter for the
# PyTorch peer (from AMM_REPO, a checkout of Hivetensor/AutoML-Miner); and, compressed, under
# target/gpu-carry for carrying there.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ncpc-target}"
out=target/gpu-check
mkdir -p "$out"
cargo build --release --locked --features wgpu --bin ncpc
bench=$(cargo bench --locked --features wgpu --bench population --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*population[^"]*\)".*/\1/p' | tail -n 1)
cp "$CARGO_TARGET_DIR/release/ncpc" "$out/ncpc"
cp "$bench" "$out/population"
strip "$out/ncpc" "$out/population" 2>/dev/null || true
if [ -n "${AMM_REPO:-}" ]; then
  rm -rf "$out/amm" && mkdir -p "$out/amm" && cp -r "$AMM_REPO/automl_client" "$out/amm/"
fi
# What `device` carries (64 MiB at most): the binaries xz-compressed, AMM's interpreter, and
# the Vulkan loader in case the GPU machine lacks one.
carry=target/gpu-carry
rm -rf "$carry" && mkdir -p "$carry/lib"
xz -T0 -6 -c "$out/ncpc" >"$carry/ncpc.xz"
xz -T0 -6 -c "$out/population" >"$carry/population.xz"
if [ -d "$out/amm" ]; then cp -r "$out/amm" "$carry/amm"; fi
for lib in /usr/lib/x86_64-linux-gnu/libvulkan.so.1; do
  if [ -e "$lib" ]; then cp -L "$lib" "$carry/lib/"; fi
done
du -sh "$out"/* "$carry"
