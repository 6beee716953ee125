#!/usr/bin/env python3
"""What an encoder's nearest neighbours share: labels, or low-level traits of the clips.

    python3 scripts/neighbour-traits.py [--traits CACHE.json] CLIPS_ROOT SET.cvrlemb [SET.cvrlemb ...]
    python3 scripts/neighbour-traits.py [--traits CACHE.json] --maps CLIPS_ROOT EXPLORE_FOLDER [EXPLORE_FOLDER ...]

For every video of each embedding set (cvrl's .cvrlemb format, keys relative to CLIPS_ROOT; a prepared set's
".cvrlvid" suffix is dropped to find the original) this measures, with ffmpeg, traits an encoder can latch on to
without understanding the action: mean brightness, colourfulness (mean chroma), motion energy (mean absolute
difference of consecutive frames at 8 fps), source height and duration. For each set it then pairs every video with
its nearest neighbour (cosine) and prints, per trait, the mean trait distance of those pairs divided by the mean over
all pairs: 1.0 means the neighbours are no more alike in that trait than random pairs, 0.3 means they are much more
alike (the encoder groups by it). The first column is how often the neighbour has the same class (1-NN accuracy).
A last row gives the range chance covers: the 2.5th to 97.5th percentile of the same ratios when each video's
"neighbour" is drawn at random (1,000 draws, fixed seed, over the last set's videos).
With --maps it reads the 2D map of each explore report (cvrl explore, or compare's explore-<row>/) instead and prints
how much of the map's spread lies along its main axis, and the Spearman rank correlation of each video's place along
that axis with each trait: a map that is nearly a line ordered by one trait shows what the encoder mostly encodes.
Standard library and ffmpeg only; with --traits the measured traits are kept in that JSON file and read back.
"""
import json
import math
import os
import random
import subprocess
import sys


sys.dont_write_bytecode = True  # importing the reader below leaves no __pycache__ in the repository
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "same-results"))
from compare import embedding_set  # noqa: E402  (the .cvrlemb reader the reproducibility check uses)


def read_set(path):
    _, keys, flat = embedding_set(path)
    dim = len(flat) // len(keys)
    return keys, [list(flat[i * dim:(i + 1) * dim]) for i in range(len(keys))]


MEASURED = {}


def traits(path):
    if path in MEASURED:
        return MEASURED[path]
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height:format=duration",
                            "-of", "default=nw=1:nk=1", path], capture_output=True, text=True, check=True).stdout.split()
    height, duration = float(probe[0]), float(probe[1])
    w, h = 32, 18
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-vf", f"fps=8,scale={w}:{h}", "-f", "rawvideo", "-pix_fmt", "yuv444p", "-"],
                         capture_output=True, check=True).stdout
    plane = w * h
    frames = [raw[i:i + 3 * plane] for i in range(0, len(raw) - 3 * plane + 1, 3 * plane)]
    luma = sum(sum(f[:plane]) for f in frames) / (plane * len(frames))
    chroma = sum(sum(abs(b - 128) for b in f[plane:]) for f in frames) / (2 * plane * len(frames))
    motion = (sum(sum(abs(a - b) for a, b in zip(f[:plane], g[:plane])) for f, g in zip(frames, frames[1:])) / (plane * (len(frames) - 1))
              if len(frames) > 1 else 0.0)
    MEASURED[path] = {"brightness": luma, "colour": chroma, "motion": motion, "height": height, "duration": duration}
    return MEASURED[path]


def mean(values):
    return sum(values) / len(values)


def original(root, key):
    return os.path.join(root, key[:-len(".cvrlvid")] if key.endswith(".cvrlvid") else key)


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    for r, i in enumerate(order):
        result[i] = float(r)
    return result


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    centre = (len(a) - 1) / 2
    num = sum((x - centre) * (y - centre) for x, y in zip(ra, rb))
    return num / math.sqrt(sum((x - centre) ** 2 for x in ra) * sum((y - centre) ** 2 for y in rb))


def map_axes(root, folders, names):
    print("| explore report | spread on the main axis | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for folder in folders:
        with open(os.path.join(folder, "data.js")) as f:
            text = f.read()
        data = json.loads(text[text.index("{"):text.rindex("}") + 1])
        x, y = data["x"], data["y"]
        mx, my = mean(x), mean(y)
        sxx = sum((a - mx) ** 2 for a in x)
        syy = sum((b - my) ** 2 for b in y)
        sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
        angle = 0.5 * math.atan2(2 * sxy, sxx - syy)  # the principal axis of the 2D layout
        along = [(a - mx) * math.cos(angle) + (b - my) * math.sin(angle) for a, b in zip(x, y)]
        share = ((sxx + syy) / 2 + math.sqrt(((sxx - syy) / 2) ** 2 + sxy ** 2)) / (sxx + syy)
        t = [traits(original(root, k)) for k in data["keys"]]
        rhos = [spearman(along, [v[name] for v in t]) for name in names]
        print(f"| {os.path.basename(os.path.normpath(folder))} | {share:.0%} | " + " | ".join(f"{r:+.2f}" for r in rhos) + " |")


def main():
    args = sys.argv[1:]
    cache_file = None
    if args[:1] == ["--traits"] and len(args) > 1:
        cache_file, args = args[1], args[2:]
        if os.path.exists(cache_file):
            with open(cache_file) as f:
                MEASURED.update(json.load(f))
    maps = args[:1] == ["--maps"]
    if maps:
        args = args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    root = args[0]
    names = ["brightness", "colour", "motion", "height", "duration"]
    if maps:
        map_axes(root, args[1:], names)
        save(cache_file)
        return
    print("| embedding set | same class | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for set_path in args[1:]:
        keys, vectors = read_set(set_path)
        norms = [math.sqrt(sum(x * x for x in v)) or 1.0 for v in vectors]
        units = [[x / n for x in v] for v, n in zip(vectors, norms)]
        files = [original(root, k) for k in keys]
        t = [traits(f) for f in files]
        n = len(keys)
        nearest = []
        for i in range(n):
            best = max((j for j in range(n) if j != i), key=lambda j: sum(a * b for a, b in zip(units[i], units[j])))
            nearest.append(best)
        same = sum(keys[i].split("/")[0] == keys[nearest[i]].split("/")[0] for i in range(n)) / n
        ratios = []
        for name in names:
            near = mean([abs(t[i][name] - t[nearest[i]][name]) for i in range(n)])
            every = mean([abs(t[i][name] - t[j][name]) for i in range(n) for j in range(i + 1, n)])
            ratios.append(near / every if every > 0 else float("nan"))
        print(f"| {os.path.basename(set_path)} | {same:.0%} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")
    # Chance, over the last set's videos: each video's "neighbour" drawn at random.
    every = {name: mean([abs(t[i][name] - t[j][name]) for i in range(n) for j in range(i + 1, n)]) for name in names}
    draws = {name: [] for name in names}
    rng = random.Random(0)
    for _ in range(1000):
        pick = [rng.choice([j for j in range(n) if j != i]) for i in range(n)]
        for name in names:
            draws[name].append(mean([abs(t[i][name] - t[pick[i]][name]) for i in range(n)]) / every[name])
    spans = [f"{sorted(draws[name])[25]:.2f}-{sorted(draws[name])[974]:.2f}" for name in names]
    print("| random neighbours (95% of draws) | | " + " | ".join(spans) + " |")
    save(cache_file)


def save(cache_file):
    if cache_file:
        with open(cache_file, "w") as f:
            json.dump(MEASURED, f)


if __name__ == "__main__":
    main()
