#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build, test and run Cvrl, and nothing else:
#   - libgtk-3-0: OpenCvSharp's Linux runtime links GTK 3 (docs/installation.md);
#   - mpich: the MPI launcher and library for multi-process pre-training (docs/distributed.md) and its tests;
#   - ffmpeg: the tests make long-GOP H.264, VP9, MPEG-TS and elementary-stream fixtures with it (OpenCV's writer
#     cannot), and the data benchmark makes its minutes-long videos with it;
#   - chromium: the explore report's test opens the page in a real browser (driven by PuppeteerSharp over the DevTools
#     protocol; Debian's build, since browser downloads cannot work here);
#   - python3-numpy: the dense-feature tests check that NumPy reads the .npy files cvrl features writes;
#   - dotnet-repl (pinned in .config/dotnet-tools.json): runs the C# notebooks in samples/.
# Everything comes from the package registries (Debian/Ubuntu apt, NuGet). Idempotent: when all is present it only
# checks, in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET SDK 10 is required (https://dot.net); 'dotnet' is not on PATH" >&2
  exit 1
fi

have_pkg() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  have_pkg libgtk-3-0 || have_pkg libgtk-3-0t64 || missing+=(libgtk-3-0)
  have_pkg mpich || missing+=(mpich)
  have_pkg ffmpeg || missing+=(ffmpeg)
  have_pkg chromium || missing+=(chromium)
  have_pkg python3-numpy || missing+=(python3-numpy)
fi

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "setup: please install as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "setup: installing ${missing[*]} (apt)"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Local .NET tools (dotnet-repl); 'restore' is a no-op when they are already installed.
dotnet tool restore >/dev/null
echo "setup: ok"
