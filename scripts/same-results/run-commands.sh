#!/usr/bin/env bash
# Runs a fixed set of `cvrl` commands with explicit options (quickstart --tiny, pretrain, embed through a checkpoint,
# an ONNX export and a fresh encoder, probe, knn, finetune) and keeps their outputs in <out-dir>.
# usage: run-commands.sh <folder holding Cvrl.Cli.dll> <out-dir>
set -euo pipefail
cli="dotnet $(cd "$1" && pwd)/Cvrl.Cli.dll"
out=$2
rm -rf "$out"
mkdir -p "$out"
cd "$out"
$cli quickstart --tiny --out qs > quickstart.txt 2>&1
data=qs/data
$cli pretrain $data --out run --depth 18 --width 0.0625 --epochs 2 --batch 4 --frames 8 --stride 2 --size 32 --seed 3 --workers 2 --log-every 1 > pretrain.txt 2>&1
checkpoint=$(ls run/checkpoints/*.cvrl | tail -1)
views=(--clips 3 --crops 3 --frames 8 --stride 2 --size 32 --batch 5 --workers 2)
$cli embed $data --out emb-ck.cvrlemb --checkpoint "$checkpoint" "${views[@]}" > embed-ck.txt 2>&1
$cli export "$checkpoint" --out enc.onnx > export.txt 2>&1
$cli embed $data --out emb-onnx.cvrlemb --checkpoint enc.onnx "${views[@]}" > embed-onnx.txt 2>&1
$cli embed $data --out emb-fresh.cvrlemb --depth 18 --width 0.0625 --init-seed 5 --clips 2 --crops 1 --frames 8 --stride 2 --size 32 --batch 3 --workers 2 > embed-fresh.txt 2>&1
eval=(--checkpoint "$checkpoint" --frames 8 --stride 2 --size 32 --test-size 32 --batch 4 --workers 2)
$cli probe $data "${eval[@]}" --clips 2 --crops 3 --epochs 5 --cached-views 2 --out probe.json > probe.txt 2>&1
$cli knn $data "${eval[@]}" --clips 2 --crops 3 -k 3 --out knn.json > knn.txt 2>&1
$cli finetune $data "${eval[@]}" --clips 2 --crops 1 --epochs 2 --tune-batch 4 --out finetune.json > finetune.txt 2>&1
