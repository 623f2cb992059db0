#!/usr/bin/env bash
# Vendor the dashboard's third-party files into ui/vendor/ from the npm registry:
#   uPlot 1.6.32 (charts):   dist/uPlot.iife.min.js, dist/uPlot.min.css, LICENSE
#   KaTeX 0.19.1 (formulas): dist/katex.min.js, dist/katex.min.css, dist/fonts/*.woff2, LICENSE
# (katex.min.css also names .woff and .ttf fonts after the .woff2 ones; browsers take the
# first format they support, woff2, so only those are kept.)
#
#   scripts/fetch-ui-vendor.sh            fetch, check against ui/vendor/SHA256SUMS, install
#   scripts/fetch-ui-vendor.sh --update   fetch, install and rewrite ui/vendor/SHA256SUMS
#   scripts/fetch-ui-vendor.sh --verify   check the files in ui/vendor/ only (no network)
#
# The vendored files are committed; nothing is fetched when ncpc is built or run.
set -euo pipefail
UPLOT_VERSION=1.6.32
KATEX_VERSION=0.19.1
root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/ui/vendor"
sums="$vendor/SHA256SUMS"
mode="${1:-install}"
case "$mode" in
  install|--update|--verify) ;;
  *) echo "usage: $0 [--update|--verify]" >&2; exit 2 ;;
esac

if [ "$mode" = --verify ]; then
  (cd "$vendor" && sha256sum --quiet -c SHA256SUMS)
  echo "ui/vendor: all files match SHA256SUMS"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" "katex@$KATEX_VERSION" >/dev/null)
mkdir -p "$work/uplot-pkg" "$work/katex-pkg"
tar xzf "$work/uplot-$UPLOT_VERSION.tgz" -C "$work/uplot-pkg"
tar xzf "$work/katex-$KATEX_VERSION.tgz" -C "$work/katex-pkg"

stage="$work/stage"
mkdir -p "$stage/uplot" "$stage/katex/fonts"
cp "$work/uplot-pkg/package/dist/uPlot.iife.min.js" "$work/uplot-pkg/package/dist/uPlot.min.css" \
   "$work/uplot-pkg/package/LICENSE" "$stage/uplot/"
cp "$work/katex-pkg/package/dist/katex.min.js" "$work/katex-pkg/package/dist/katex.min.css" \
   "$work/katex-pkg/package/LICENSE" "$stage/katex/"
cp "$work"/katex-pkg/package/dist/fonts/*.woff2 "$stage/katex/fonts/"

if [ "$mode" = --update ]; then
  (cd "$stage" && find uplot katex -type f | LC_ALL=C sort | xargs sha256sum) > "$work/SHA256SUMS"
else
  [ -f "$sums" ] || { echo "no $sums: run with --update first" >&2; exit 1; }
  cp "$sums" "$work/SHA256SUMS"
  # every file named in SHA256SUMS must match, and nothing fetched may be unlisted
  (cd "$stage" && sha256sum --quiet -c "$work/SHA256SUMS") || { echo "fetched files differ from ui/vendor/SHA256SUMS" >&2; exit 1; }
  extra="$(cd "$stage" && find uplot katex -type f | LC_ALL=C sort | comm -23 - <(awk '{print $2}' "$work/SHA256SUMS" | LC_ALL=C sort))"
  [ -z "$extra" ] || { echo "fetched files not in SHA256SUMS: $extra" >&2; exit 1; }
fi

rm -rf "$vendor/uplot" "$vendor/katex"
mkdir -p "$vendor"
cp -r "$stage/uplot" "$stage/katex" "$vendor/"
cp "$work/SHA256SUMS" "$sums"
(cd "$vendor" && sha256sum --quiet -c SHA256SUMS)
echo "ui/vendor: uPlot $UPLOT_VERSION, KaTeX $KATEX_VERSION ($(wc -l < "$sums") files, SHA256SUMS $([ "$mode" = --update ] && echo written || echo checked))"
