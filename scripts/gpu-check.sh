#!/usr/bin/env bash
# Mixed precision on a CUDA device: the R3D-50 training step per precision (float32, bfloat16) at batches of 16 and 64
# clips of 16 x 224 x 224 next to PyTorch's float32 and bfloat16 autocast, and a short pre-training through CvrlTrainer
# per precision (`Cvrl.Benchmarks gpu`). Never part of the tests or CI.
#
# A lent GPU machine has a CUDA PyTorch but no .NET and no network, so the check travels as two archives:
#   bash scripts/gpu-check.sh prepare
#       here: builds the benchmarks against TorchSharp without its CPU libtorch (-p:CvrlTorchBackend=external) and
#       packs the app and a .NET runtime into artifacts/gpu-check/ (git-ignored, under the 64 MiB a run may carry).
#   bash scripts/gpu-check.sh device [gpu options]
#       on the GPU machine, in one call (carry artifacts/gpu-check): unpacks both, points LD_LIBRARY_PATH at PyTorch's
#       CUDA libtorch, checks that TorchSharp's native bridge resolves against it, and runs the check; the report goes
#       to $OUT/gpu-check.md (or artifacts/gpu-check-out/ when $OUT is not set).
#   bash scripts/gpu-check.sh local [gpu options]
#       tries the device half here, on the CPU, with the CPU libtorch from the NuGet cache and small sizes.
# Options after the mode go to `Cvrl.Benchmarks gpu` (see its usage); the defaults are the issue's sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
shift || true
pack=artifacts/gpu-check
# A run carries at most 64 MiB together with the working tree; keep a MiB spare.
limit_bytes=$((63 * 1024 * 1024 - $(git ls-files -z --cached --others --exclude-standard | xargs -0 cat | wc -c)))

prepare() {
    local stage
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' RETURN
    bash scripts/setup.sh >/dev/null
    dotnet build benchmarks/Cvrl.Benchmarks/Cvrl.Benchmarks.csproj -c Release -v q -nologo -p:CvrlTorchBackend=external -o "$stage/app" >/dev/null
    # Put the repository's own build back to the CPU backend (the next plain build restores it anyway).
    dotnet restore benchmarks/Cvrl.Benchmarks/Cvrl.Benchmarks.csproj -v q >/dev/null
    # Linux x64 only; of its native libraries only TorchSharp's bridge and OpenCV (decoding, for the pre-training).
    find "$stage/app/runtimes" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
    find "$stage/app/runtimes/linux-x64/native" -type f ! -name libLibTorchSharp.so ! -name libOpenCvSharpExtern.so -delete
    find "$stage/app" -maxdepth 1 \( -name '*.pdb' -o -name '*.xml' \) -delete
    # OpenCV's library ships with its symbol table; the dynamic symbols it exports are all it needs (saves ~10 MB).
    if command -v strip >/dev/null; then strip --strip-unneeded "$stage/app/runtimes/linux-x64/native/libOpenCvSharpExtern.so"; fi
    if ls "$stage"/app/libtorch*.so* >/dev/null 2>&1; then
        echo "gpu-check: a CPU libtorch is still in the build output; the external backend was not used" >&2
        exit 1
    fi
    mkdir -p "$pack"
    rm -f "$pack"/*.tar.xz
    local dotnet_root
    dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
    local runtime
    runtime=$(ls -d "$dotnet_root"/shared/Microsoft.NETCore.App/10.* | sort -V | tail -1)
    tar -cf - -C "$dotnet_root" dotnet host "shared/Microsoft.NETCore.App/$(basename "$runtime")" | xz -T0 -6 > "$pack/dotnet-rt.tar.xz"
    tar -cf - -C "$stage/app" . | xz -T0 -6 > "$pack/app.tar.xz"
    local total
    total=$(cat "$pack"/*.tar.xz | wc -c)
    if [ "$total" -gt "$limit_bytes" ]; then
        echo "gpu-check: the archives hold $total bytes, over the $limit_bytes a run may carry; leaving OpenCV out (the pre-training part is then skipped)" >&2
        tar -xJf "$pack/app.tar.xz" -C "$stage/app" && rm -f "$stage/app/runtimes/linux-x64/native/libOpenCvSharpExtern.so"
        tar -cf - -C "$stage/app" . | xz -T0 -6 > "$pack/app.tar.xz"
        total=$(cat "$pack"/*.tar.xz | wc -c)
    fi
    echo "gpu-check: $pack holds $(cd "$pack" && ls -- *.tar.xz | tr "\n" " ")($((total / 1024 / 1024)) MiB); on the GPU machine run: bash scripts/gpu-check.sh device (carry $pack)"
}

# The first python3 that imports torch (the PATH's, then Debian's).
python_with_torch() {
    local candidate
    for candidate in "$(command -v python3 || true)" /usr/bin/python3; do
        if [ -n "$candidate" ] && "$candidate" -c "import torch" 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Unpacks the archives and runs the check with libtorch from $1; remaining arguments go to `Cvrl.Benchmarks gpu`.
run_check() {
    local libtorch=$1
    shift
    local out=${OUT:-$pack-out}
    mkdir -p "$out"
    local work
    work=$(mktemp -d)
    mkdir -p "$work/dotnet" "$work/app"
    tar -xJf "$pack/dotnet-rt.tar.xz" -C "$work/dotnet"
    tar -xJf "$pack/app.tar.xz" -C "$work/app"
    export DOTNET_ROOT="$work/dotnet" PATH="$work/dotnet:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1
    export LD_LIBRARY_PATH="$libtorch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    CVRL_PYTHON=$(python_with_torch || true)
    export CVRL_PYTHON
    {
        echo "libtorch: $libtorch"
        (command -v nvidia-smi >/dev/null && nvidia-smi) || echo "no nvidia-smi"
        echo "undefined symbols of libLibTorchSharp.so against this libtorch:"
        ldd -r "$work/app/runtimes/linux-x64/native/libLibTorchSharp.so" 2>&1 | grep -c "undefined symbol" || true
        ldd "$work/app/runtimes/linux-x64/native/libOpenCvSharpExtern.so" 2>/dev/null | grep "not found" || true
    } > "$out/environment.txt" 2>&1
    cat "$out/environment.txt"
    timeout "${CVRL_GPU_CHECK_SECONDS:-480}" "$work/dotnet/dotnet" "$work/app/Cvrl.Benchmarks.dll" gpu "$@" 2>"$out/stderr.txt" | tee "$out/gpu-check.md"
    local status=${PIPESTATUS[0]}
    tail -20 "$out/stderr.txt" >&2
    rm -rf "$work"
    return "$status"
}

case "$mode" in
    prepare)
        prepare
        ;;
    device)
        [ -f "$pack/app.tar.xz" ] || { echo "gpu-check: $pack/app.tar.xz is missing: run 'bash scripts/gpu-check.sh prepare' first and carry $pack" >&2; exit 2; }
        python=$(python_with_torch) || { echo "gpu-check: no python3 with torch here: its CUDA libtorch is what the check runs on" >&2; exit 2; }
        libtorch=$("$python" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
        run_check "$libtorch" "$@"
        ;;
    local)
        [ -f "$pack/app.tar.xz" ] || prepare
        libtorch=$(ls -d "$HOME"/.nuget/packages/libtorch-cpu-linux-x64/*/runtimes/linux-x64/native | sort -V | tail -1)
        run_check "$libtorch" --device cpu --batches 2 --frames 4 --size 32 --steps 2 --pretrain-steps 4 --pretrain-batch 4 --width 0.25 "$@"
        ;;
    *)
        echo "usage: bash scripts/gpu-check.sh prepare | device [gpu options] | local [gpu options]" >&2
        exit 2
        ;;
esac
