#!/usr/bin/env bash
# Runs every C# notebook in samples/notebooks with dotnet-repl against the packages built from this repository, so a
# broken notebook fails the tests. The notebooks name their local feed as /path/to/Cvrl/artifacts/packages; this
# script fills in the real path in a temporary copy. Executed notebooks go to artifacts/notebooks/.
# Usage: scripts/run-notebooks.sh [--no-pack] [notebook.ipynb ...]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
pack=1
if [ "${1:-}" = "--no-pack" ]; then pack=0; shift; fi
if [ "$pack" = 1 ] || [ ! -f artifacts/packages/VERSION ]; then
  version=$(bash scripts/pack.sh | tail -n 1)
  echo "notebooks: packed $version"
fi
dotnet tool restore >/dev/null
out="$root/artifacts/notebooks"
mkdir -p "$out"
work=$(mktemp -d /tmp/cvrl-notebooks.XXXXXX)
trap 'rm -rf "$work"' EXIT

notebooks=("$@")
if [ ${#notebooks[@]} -eq 0 ]; then
  mapfile -t notebooks < <(ls samples/notebooks/*.ipynb | sort)
fi

status=0
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb")
  sed "s|/path/to/Cvrl/artifacts/packages|$root/artifacts/packages|g" "$nb" > "$work/$name"
  start=$(date +%s)
  if (cd "$root" && CVRL_NOTEBOOK_TEST=1 dotnet repl --run "$work/$name" --exit-after-run --output-path "$out/$name" >"$out/${name%.ipynb}.log" 2>&1); then
    echo "notebooks: $name ok ($(( $(date +%s) - start )) s)"
  else
    echo "notebooks: $name FAILED (see $out/${name%.ipynb}.log and $out/$name)" >&2
    grep -o '"evalue": "[^"]*"' "$out/$name" 2>/dev/null | head -5 >&2 || true
    status=1
  fi
done
exit $status
