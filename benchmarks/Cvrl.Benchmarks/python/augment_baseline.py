"""The same two-view CVRL pipeline written the usual Python way, for a same-run baseline.

OpenCV decodes exactly the sampled frames (sequential grab/retrieve, BGR to RGB), torchvision's functional ops on
uint8/float tensors [T, 3, H, W] do the augmentation (one parameter set per clip). One thread for torch and OpenCV.
Prints one Markdown table row per setting. Used by `Cvrl.Benchmarks augment --python`.
"""
import argparse
import math
import random
import time

import cv2
import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F

torch.set_num_threads(1)
cv2.setNumThreads(1)


def sample_pair(length, rng, n=16, s=2):
    t = length - (n - 1) * s if length > (n - 1) * s else length
    u = rng.random()
    gap = min(int(math.floor(t * (1 - math.sqrt(1 - u)))), t - 1)
    if t == length:
        a, b = rng.randrange(t), rng.randrange(t)
    else:
        a = rng.randrange(t - gap)
        b = a + gap
    if rng.random() < 0.5:
        a, b = b, a
    return [[(a + s * j) % length for j in range(n)], [(b + s * j) % length for j in range(n)]]


def decode(path, clips):
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    wanted = sorted({i for c in clips for i in c})
    frames = {}
    pos = 0
    for target in wanted:
        while pos < target:
            cap.grab()
            pos += 1
        ok, bgr = cap.read()
        pos += 1
        frames[target] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    cap.release()
    return [np.stack([frames[i] for i in c]) for c in clips]


def augment(frames, rng, view):
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)  # [T, 3, H, W] uint8
    i, j, h, w = T.RandomResizedCrop.get_params(x, scale=(0.3, 1.0), ratio=(0.5, 2.0))
    x = F.resized_crop(x, i, j, h, w, [224, 224])
    if rng.random() < 0.5:
        x = F.hflip(x)
    x = x.float() / 255.0
    if rng.random() < 0.8:
        ops = [lambda y: F.adjust_brightness(y, rng.uniform(0.2, 1.8)),
               lambda y: F.adjust_contrast(y, rng.uniform(0.2, 1.8)),
               lambda y: F.adjust_saturation(y, rng.uniform(0.2, 1.8)),
               lambda y: F.adjust_hue(y, rng.uniform(-0.2, 0.2))]
        rng.shuffle(ops)
        for op in ops:
            x = op(x).clamp(0, 1)
    if rng.random() < 0.2:
        x = F.rgb_to_grayscale(x, 3)
    if rng.random() < (1.0 if view == 0 else 0.1):
        sigma = rng.uniform(0.1, 2.0)
        x = F.gaussian_blur(x, [23, 23], [sigma, sigma])
    if view == 1 and rng.random() < 0.2:
        x = F.solarize(x, 0.5)
    return x.permute(1, 0, 2, 3).contiguous()  # [3, T, H, W]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("paths", nargs="+")
    a = p.parse_args()
    lengths = {}
    for path in a.paths:
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        lengths[path] = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()

    def run(full):
        start = time.perf_counter()
        for k in range(a.samples):
            rng = random.Random(k)
            path = a.paths[k % len(a.paths)]
            clips = decode(path, sample_pair(lengths[path], rng))
            if full:
                augment(clips[0], rng, 0)
                augment(clips[1], rng, 1)
        return a.samples / (time.perf_counter() - start)

    run(True)
    dec, full = [], []
    for _ in range(a.rounds):
        dec.append(run(False))
        full.append(run(True))
    d, f = sorted(dec)[len(dec) // 2], sorted(full)[len(full) // 2]
    print(f"Same run, the usual Python way (OpenCV {cv2.__version__} decode + torchvision {torchvision.__version__} "
          f"functional ops, torch {torch.__version__}, 1 thread):")
    print()
    print("| setting | (a) decode only, pairs/s | (b) full two-view pipeline, pairs/s | (b) / (a) |")
    print("|---|---|---|---|")
    print(f"| Python, 1 thread | {d:.2f} | {f:.2f} | {f / d:.2f} |")


if __name__ == "__main__":
    main()
