#!/usr/bin/env bash
# Every test: installs what the machine lacks (scripts/setup.sh), builds the solution, runs the unit tests of all
# projects, the packaged-consumer check (scripts/check-package.sh) and the notebooks (scripts/run-notebooks.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
dotnet build Cvrl.sln -c Release -v q -nologo
dotnet test Cvrl.sln -c Release --no-build -v q -nologo --logger "console;verbosity=minimal"
bash scripts/check-package.sh
bash scripts/run-notebooks.sh --no-pack
echo "test.sh: all passed in $(( $(date +%s) - start )) s"
