#!/usr/bin/env bash
# The packaged-consumer check: packs the three libraries, inspects the packages, then builds, runs and publishes a
# new console app in a temporary folder outside the repository that references only the packed packages (from a
# local folder feed) plus TorchSharp-cpu, exactly as a user would. The app runs a tensor operation and a video
# decode; the published app is also run with the runtime fix-up turned off, to prove the build-side patch.
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
