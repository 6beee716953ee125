#!/usr/bin/env bash
# Checks that a change keeps results the same: builds the `cvrl` tool at <revision> (default HEAD) in a temporary
# worktree and from the working tree, runs the same commands with explicit options through both
# (scripts/same-results/run-commands.sh) and compares embeddings, pre-training losses and probe and kNN results bit for
# bit, fine-tuning within 1e-4 relative (scripts/same-results/compare.py). Exit status 0 when all agree.
# usage: bash scripts/same-results.sh [revision]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/before" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/before" "$rev"
dotnet build "$work/before/samples/Cvrl.Cli/Cvrl.Cli.csproj" -c Release -v q -nologo -o "$work/before-cli" >/dev/null
dotnet build samples/Cvrl.Cli/Cvrl.Cli.csproj -c Release -v q -nologo -o "$work/after-cli" >/dev/null
bash scripts/same-results/run-commands.sh "$work/before-cli" "$work/before-out"
bash scripts/same-results/run-commands.sh "$work/after-cli" "$work/after-out"
python3 scripts/same-results/compare.py "$work/before-out" "$work/after-out"
