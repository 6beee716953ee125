#!/usr/bin/env bash
# Runs the test suite many times to find flaky tests (not part of the test command).
#   bash scripts/stress-tests.sh [RUNS] [--load] [--full]
# RUNS (default 20): how many times. --load: keep both cores busy with another process during every run (a
# busy-looping process per core), as a loaded CI machine would. --full: run `bash .ci/run` on a fresh clean clone each
# time (setup, build, every test, the package check and the notebooks); without it the solution is built once and
# `dotnet test` runs the four test projects each time. Prints one line per run and a summary; logs go to
# artifacts/stress/. Exit code 0 only when every run passed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=20
load=0
full=0
for arg in "$@"; do
  case "$arg" in
    --load) load=1 ;;
    --full) full=1 ;;
    *) runs="$arg" ;;
  esac
done
out="$PWD/artifacts/stress"
mkdir -p "$out"
loaders=()
stop_load() { for p in "${loaders[@]}"; do kill "$p" 2>/dev/null; done; loaders=(); }
trap stop_load EXIT
if [ "$full" = 0 ]; then
  bash scripts/setup.sh >/dev/null
  dotnet build Cvrl.sln -c Release -v q -nologo >"$out/build.log" 2>&1 || { echo "stress: build failed (see $out/build.log)" >&2; exit 1; }
fi
passed=0
for ((i = 1; i <= runs; i++)); do
  if [ "$load" = 1 ]; then
    for ((c = 0; c < $(nproc); c++)); do (while :; do :; done) & loaders+=($!); done
  fi
  start=$(date +%s)
  if [ "$full" = 1 ]; then
    clone=$(mktemp -d /tmp/cvrl-stress.XXXXXX)
    git clone -q . "$clone" && (cd "$clone" && CI=true bash .ci/run) >"$out/run-$i.log" 2>&1
    status=$?
    rm -rf "$clone"
  else
    dotnet test Cvrl.sln -c Release --no-build -v q -nologo --logger "console;verbosity=minimal" >"$out/run-$i.log" 2>&1
    status=$?
  fi
  stop_load
  if [ "$status" = 0 ]; then
    passed=$((passed + 1))
    echo "stress: run $i passed ($(( $(date +%s) - start )) s$([ "$load" = 1 ] && echo ", loaded"))"
  else
    echo "stress: run $i FAILED ($(( $(date +%s) - start )) s; see $out/run-$i.log)"
    grep -E "^\s+Failed |Error Message|Aborted" -A2 "$out/run-$i.log" | head -8
  fi
done
echo "stress: $passed of $runs runs passed"
[ "$passed" = "$runs" ]
