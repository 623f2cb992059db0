#!/usr/bin/env bash
# Build here what scripts/gpu-check.sh runs on a GPU machine, which has no package registries:
# release builds with --features wgpu,cuda-rt (ncpc, benches/population.rs,
# benches/population_kernels.rs), AMM's interpreter for the PyTorch peer (from AMM_REPO, a
# checkout of Hivetensor/AutoML-Miner), and the Debian packages that make Vulkan work on the
# lent H100/H200 machines (the Vulkan loader and libglvnd's dispatch libraries, which the
# NVIDIA ICD's libGLX_nvidia.so.0 needs). Everything lands in target/gpu-carry (ignored),
# compressed, to be carried there:
#
#   scripts/gpu-prepare.sh
#   (device) bash scripts/gpu-check.sh target/gpu-carry "$OUT"     # carry: target/gpu-carry
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ncpc-target}"
features=wgpu,cuda-rt
cargo build --release --locked --features "$features" --bin ncpc
bench_exe() {
  cargo bench --locked --features "$features" --bench "$1" --no-run --message-format=json 2>/dev/null \
    | sed -n "s/.*\"executable\":\"\([^\"]*\/$1-[^\"]*\)\".*/\1/p" | tail -n 1
}
carry=target/gpu-carry
rm -rf "$carry" && mkdir -p "$carry/gl"
for b in ncpc population population_kernels; do
  if [ "$b" = ncpc ]; then src="$CARGO_TARGET_DIR/release/ncpc"; else src="$(bench_exe "$b")"; fi
  [ -n "$src" ] || { echo "no executable for $b"; exit 1; }
  strip -o "$carry/$b" "$src" 2>/dev/null || cp "$src" "$carry/$b"
  xz -T0 -6 -f "$carry/$b"
done
if [ -n "${AMM_REPO:-}" ]; then
  mkdir -p "$carry/amm" && cp -r "$AMM_REPO/automl_client" "$carry/amm/"
fi
# The Vulkan recipe for the lent machines (the device tool's README): amd64 packages, fetched
# with apt's own lists in a scratch folder so the system's are untouched.
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/ncpc-apt-amd64)
mkdir -p /tmp/ncpc-apt-amd64/partial
apt-get "${o[@]}" update -q >/dev/null
(cd "$carry/gl" && apt-get "${o[@]}" download -q libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
du -sh "$carry" "$carry"/*
