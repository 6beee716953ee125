#!/usr/bin/env bash
# Packs Cvrl.Video, Cvrl.Augment, Cvrl.Models, Cvrl and Cvrl.Onnx into artifacts/packages with a unique prerelease version
# (0.1.0-local.<timestamp>), so that a NuGet cache never serves an older build of the same version.
# Prints the version on the last line and writes it to artifacts/packages/VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
feed="$PWD/artifacts/packages"
rm -rf "$feed"
mkdir -p "$feed"
suffix="local.$(date +%Y%m%d%H%M%S)"
for project in Cvrl.Video Cvrl.Augment Cvrl.Models Cvrl Cvrl.Onnx; do
  dotnet pack "src/$project/$project.csproj" -c Release --version-suffix "$suffix" -o "$feed" -v q -nologo >/dev/null
done
prefix=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)
version="$prefix-$suffix"
echo "$version" > "$feed/VERSION"
echo "$version"
