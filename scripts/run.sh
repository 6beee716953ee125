#!/usr/bin/env bash
# The main job: runs the `cvrl` command-line tool (samples/Cvrl.Cli) with the given arguments; with none, its
# default command. Installs what the machine lacks first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
dotnet build samples/Cvrl.Cli/Cvrl.Cli.csproj -c Release -v q -nologo >/dev/null
exec dotnet samples/Cvrl.Cli/bin/Release/net10.0/Cvrl.Cli.dll "$@"
