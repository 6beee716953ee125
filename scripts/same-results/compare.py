#!/usr/bin/env python3
"""Compares the outputs of two runs of run-commands.sh: embedding sets (fingerprint, keys and every float), the
pre-training metrics (step, epoch, loss, accuracy, entropy, learning rate) and the probe and kNN results bit for bit;
fine-tuning within 1e-4 relative (its backward pass is not bit-reproducible from run to run on two threads).
Timings, paths, dates, versions and the settings records are not compared. Exit status 1 when anything differs."""
import csv
import json
import os
import struct
import sys

IGNORED = {'Elapsed', 'Video', 'CreatedUtc', 'createdUtc', 'Settings', 'CvrlVersion'}


def embedding_set(path):
    data = open(path, 'rb').read()
    if data[:8] != b'CVRLEMB1':
        raise ValueError(f'{path} is not an embedding set')
    count, dim = struct.unpack_from('<ii', data, 8)
    pos = 16

    def text():
        nonlocal pos
        (length,) = struct.unpack_from('<i', data, pos)
        pos += 4
        value = data[pos:pos + length].decode()
        pos += length
        return value

    fingerprint = text()
    text()  # metadata: paths and dates differ between runs
    keys = [text() for _ in range(count)]
    return fingerprint, keys, struct.unpack_from(f'<{count * dim}f', data, pos)


def numbers(node):
    if isinstance(node, dict):
        return {k: numbers(v) for k, v in node.items() if k not in IGNORED}
    if isinstance(node, list):
        return [numbers(v) for v in node]
    return node


def close(x, y):
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(close(u, v) for u, v in zip(x, y))
    if isinstance(x, float) or isinstance(y, float):
        return abs(x - y) <= 1e-4 * max(abs(x), abs(y)) + 1e-6
    return x == y


def main(before, after):
    failures = 0

    def report(name, ok, detail):
        nonlocal failures
        failures += not ok
        print(f'{name}: {detail if ok else "DIFFERENT"}')

    for name in sorted(f for f in os.listdir(before) if f.endswith('.cvrlemb')):
        a, b = embedding_set(os.path.join(before, name)), embedding_set(os.path.join(after, name))
        worst = max((abs(u - v) for u, v in zip(a[2], b[2])), default=0.0) if len(a[2]) == len(b[2]) else float('inf')
        report(name, a == b, f'identical ({len(a[2])} floats)')
        if a != b:
            print(f'  largest difference {worst:.3g}; fingerprint {"same" if a[0] == b[0] else "differs"}; keys {"same" if a[1] == b[1] else "differ"}')

    metrics = 'run/metrics.csv'
    rows = [[r[:6] for r in csv.reader(open(os.path.join(d, metrics)))] for d in (before, after)]
    report(metrics, rows[0] == rows[1], f'identical ({len(rows[0]) - 1} steps)')

    for name in ['probe.json', 'knn.json', 'qs/cvrl-probe.json', 'qs/cvrl-knn.json', 'qs/random-probe.json', 'qs/random-knn.json']:
        a, b = (numbers(json.load(open(os.path.join(d, name)))) for d in (before, after))
        report(name, a == b, 'identical')

    a, b = (numbers(json.load(open(os.path.join(d, 'finetune.json')))) for d in (before, after))
    report('finetune.json', close(a, b), 'identical' if a == b else 'within 1e-4 relative')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2]))
