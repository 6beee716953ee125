#!/usr/bin/env bash
# The packaged-consumer check: packs the libraries, inspects the packages, then builds, runs and publishes a new
# console app in a temporary folder outside the repository that references only the packed packages (from a local
# folder feed) plus TorchSharp-cpu, exactly as a user would. The app runs a tensor operation and a video decode and
# exports a small encoder to ONNX; the published app is also run with the runtime fix-up turned off, to prove the
# build-side patch. A second app references only Cvrl.Onnx and ONNX Runtime: it embeds a generated video with the
# exported encoder and shows that no libtorch library was loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
version=$(bash scripts/pack.sh | tail -n 1)
feed="$root/artifacts/packages"
echo "check-package: packed $version"

fail() { echo "check-package: FAILED: $*" >&2; exit 1; }

# 1. Package contents: assembly, XML docs, readme, licence expression, dependencies, build-side native targets.
for id in Cvrl.Augment Cvrl.Models Cvrl; do
  pkg="$feed/$id.$version.nupkg"
  [ -f "$pkg" ] || fail "$pkg missing"
  listing=$(unzip -l "$pkg")
  for f in "lib/net10.0/$id.dll" "lib/net10.0/$id.xml" "README.md"; do
    grep -q " $f\$" <<<"$listing" || fail "$id: $f not in package"
  done
  nuspec=$(unzip -p "$pkg" "$id.nuspec")
  grep -q '<license type="expression">MIT</license>' <<<"$nuspec" || fail "$id: MIT licence expression missing"
  grep -q '<readme>README.md</readme>' <<<"$nuspec" || fail "$id: readme not declared"
  grep -q 'id="TorchSharp"' <<<"$nuspec" || fail "$id: no TorchSharp dependency"
  if grep -q 'id="TorchSharp-cpu"' <<<"$nuspec"; then fail "$id: libraries must not depend on TorchSharp-cpu"; fi
done
# The TorchSharp-free packages: their own files, no TorchSharp anywhere in their dependencies.
for id in Cvrl.Video Cvrl.Onnx; do
  pkg="$feed/$id.$version.nupkg"
  [ -f "$pkg" ] || fail "$pkg missing"
  grep -q " lib/net10.0/$id.dll\$" <<<"$(unzip -l "$pkg")" || fail "$id: assembly not in package"
  nuspec=$(unzip -p "$pkg" "$id.nuspec")
  if grep -qi 'id="TorchSharp' <<<"$nuspec"; then fail "$id: must not depend on TorchSharp"; fi
done
grep -q 'id="OpenCvSharp4.official.runtime.linux-x64"' <<<"$(unzip -p "$feed/Cvrl.Video.$version.nupkg" Cvrl.Video.nuspec)" || fail "Cvrl.Video: OpenCV runtime dependency missing"
onnx_nuspec=$(unzip -p "$feed/Cvrl.Onnx.$version.nupkg" Cvrl.Onnx.nuspec)
for dep in Cvrl.Video Microsoft.ML.OnnxRuntime.Managed; do
  grep -q "id=\"$dep\"" <<<"$onnx_nuspec" || fail "Cvrl.Onnx: dependency $dep missing"
done
for id in Cvrl.Augment Cvrl.Models; do
  listing=$(unzip -l "$feed/$id.$version.nupkg")
  for f in "buildTransitive/$id.targets" "buildTransitive/CvrlNative.targets" "buildTransitive/ElfSymbolVersions.cs"; do
    grep -q " $f\$" <<<"$listing" || fail "$id: $f not in package"
  done
done
grep -q 'id="OpenCvSharp4.official.runtime.linux-x64"' <<<"$(unzip -p "$feed/Cvrl.Augment.$version.nupkg" Cvrl.Augment.nuspec)" || fail "Cvrl.Augment: OpenCV runtime dependency missing"
cvrl_nuspec=$(unzip -p "$feed/Cvrl.$version.nupkg" Cvrl.nuspec)
for dep in Cvrl.Augment Cvrl.Models Microsoft.Extensions.Logging.Abstractions; do
  grep -q "id=\"$dep\"" <<<"$cvrl_nuspec" || fail "Cvrl: dependency $dep missing"
done
grep -q "interactive-extensions/dotnet/extension.dib" <<<"$(unzip -l "$feed/Cvrl.Models.$version.nupkg")" || fail "Cvrl.Models: notebook extension missing"
echo "check-package: package contents ok"

# 2. A consumer app outside the repository.
app=$(mktemp -d /tmp/cvrl-consumer.XXXXXX)
trap 'rm -rf "$app"' EXIT
cat > "$app/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="cvrl-local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
XML
cat > "$app/Consumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Cvrl" Version="$version" />
    <PackageReference Include="TorchSharp-cpu" Version="0.107.0" />
  </ItemGroup>
</Project>
XML
cp samples/Consumer/Program.cs "$app/Program.cs"

(cd "$app" && dotnet build -c Release -v q -nologo >build.log 2>&1) || { cat "$app/build.log"; fail "consumer build"; }
out=$(cd "$app" && dotnet run -c Release --no-build) || { echo "$out"; fail "consumer run"; }
echo "$out" | sed 's/^/  consumer: /'
grep -q "consumer: ok" <<<"$out" || fail "consumer did not report ok"

# 3. The ONNX-only app: Cvrl.Onnx and ONNX Runtime's CPU package, nothing from TorchSharp.
out=$(cd "$app" && dotnet run -c Release --no-build -- "$app/encoder.onnx") || { echo "$out"; fail "consumer export run"; }
grep -q "consumer: exported" <<<"$out" || { echo "$out"; fail "consumer did not export the encoder"; }
onnx_app=$(mktemp -d /tmp/cvrl-onnx-consumer.XXXXXX)
trap 'rm -rf "$app" "$onnx_app"' EXIT
cp "$app/nuget.config" "$onnx_app/nuget.config"
cat > "$onnx_app/OnnxConsumer.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Cvrl.Onnx" Version="$version" />
    <PackageReference Include="Microsoft.ML.OnnxRuntime" Version="1.31.1" />
  </ItemGroup>
</Project>
XML
cp samples/OnnxConsumer/Program.cs "$onnx_app/Program.cs"
(cd "$onnx_app" && dotnet build -c Release -v q -nologo >build.log 2>&1) || { cat "$onnx_app/build.log"; fail "onnx consumer build"; }
if find "$onnx_app/bin" -name 'libtorch*' -o -name 'TorchSharp*' | grep -q .; then fail "the ONNX consumer's output holds TorchSharp or libtorch files"; fi
out=$(cd "$onnx_app" && dotnet run -c Release --no-build -- "$app/encoder.onnx") || { echo "$out"; fail "onnx consumer run"; }
echo "$out" | sed 's/^/  /'
grep -q "onnx-consumer: ok" <<<"$out" || fail "onnx consumer did not report ok"
native_mb=$(du -smL "$onnx_app/bin/Release/net10.0/runtimes/linux-x64" | cut -f1)
echo "check-package: ONNX-only consumer ok (linux-x64 natives: ${native_mb} MiB, no TorchSharp)"

(cd "$app" && dotnet publish -c Release -o "$app/publish" -v q -nologo >publish.log 2>&1) || { cat "$app/publish.log"; fail "consumer publish"; }
# The published output must load on its own: with the runtime fix-up off, only the build-side patch is at work
# (on machines whose libstdc++ is new enough nothing is patched and nothing needs to be).
out=$(CVRL_NATIVE_FIXUP=0 dotnet "$app/publish/Consumer.dll") || { echo "$out"; fail "published consumer run"; }
grep -q "consumer: ok" <<<"$out" || fail "published consumer did not report ok"

# The runtime fix-up alone (build-side patch turned off), and the clear error when both are off. Only meaningful
# where the system libstdc++ lacks GLIBCXX_3.4.32 (Debian 12, Ubuntu 22.04).
# (Here-strings, not "producer | grep -q": under pipefail grep's early exit can fail the producer with SIGPIPE.)
libstdcxx=$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {found=$NF} END {print found}')
if ! grep -q '^GLIBCXX_3\.4\.32$' <<<"$(strings "$libstdcxx" 2>/dev/null)"; then
  (cd "$app" && dotnet build -c Release -p:CvrlNativeFixup=false -o "$app/unpatched" -v q -nologo >unpatched.log 2>&1) || { cat "$app/unpatched.log"; fail "unpatched build"; }
  out=$(dotnet "$app/unpatched/Consumer.dll") || { echo "$out"; fail "runtime fix-up run"; }
  grep -q "fix-up: applied" <<<"$out" || { echo "$out"; fail "the runtime fix-up did not apply"; }
  set +e
  out=$(CVRL_NATIVE_FIXUP=0 dotnet "$app/unpatched/Consumer.dll" 2>&1)
  rc=$?
  set -e
  [ $rc -ne 0 ] || fail "with both fix-ups off the app should not load TorchSharp here"
  grep -q "lacks symbol version GLIBCXX_3.4.32. The fix-up that marks this need weak is turned off" <<<"$out" || { echo "$out"; fail "unclear error with the fix-ups off"; }
  echo "check-package: runtime fix-up alone ok; with both off the error names the cause"
fi
echo "check-package: consumer app (build, run, publish) ok"
