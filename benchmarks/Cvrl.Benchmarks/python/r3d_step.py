"""CVRL's R3D-50 (the same layout as Cvrl.Models.ResNet3d at depth 50) in PyTorch, for same-run baselines.

Usage: python3 r3d_step.py --mode train|infer [--width 1] [--batch 4] [--frames 16] [--size 112] [--steps 3]
       [--channels-last] [--autocast] [--threads 2] [--device cpu|cuda]
--autocast runs the forward pass under torch.autocast(<device>, dtype=torch.bfloat16).
Prints one line: "seconds_per_step=<median> peak_rss_mib=<VmHWM>", and on CUDA " peak_cuda_mib=<max allocated>".
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, s, relu):
        layers = [nn.Conv3d(cin, cout, k, s, tuple(x // 2 for x in k), bias=False), nn.BatchNorm3d(cout, eps=1e-5, momentum=0.1)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, kt, stride):
        super().__init__()
        self.conv1 = ConvBn(cin, planes, (kt, 1, 1), (1, 1, 1), True)
        self.conv2 = ConvBn(planes, planes, (1, 3, 3), (1, stride, stride), True)
        self.conv3 = ConvBn(planes, planes * 4, (1, 1, 1), (1, 1, 1), False)
        self.downsample = ConvBn(cin, planes * 4, (1, 1, 1), (1, stride, stride), False) if stride != 1 or cin != planes * 4 else None

    def forward(self, x):
        out = self.conv3(self.conv2(self.conv1(x)))
        out += x if self.downsample is None else self.downsample(x)
        return torch.relu_(out)


class R3D50(nn.Module):
    def __init__(self, width=1.0):
        super().__init__()
        w = lambda c: int(round(c * width))
        self.stem = nn.Sequential(nn.Conv3d(3, w(64), (5, 7, 7), (2, 2, 2), (2, 3, 3), bias=False), nn.BatchNorm3d(w(64)),
                                  nn.ReLU(inplace=True), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        cin = w(64)
        layers = []
        for stage, (blocks, kt) in enumerate(zip([3, 4, 6, 3], [1, 1, 3, 3])):
            planes = w(64 << stage)
            stage_blocks = []
            for b in range(blocks):
                stage_blocks.append(Bottleneck(cin, planes, kt, (1 if stage == 0 else 2) if b == 0 else 1))
                cin = planes * 4
            layers.append(nn.Sequential(*stage_blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return x.mean((2, 3, 4))


def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="train")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--autocast", action="store_true")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = R3D50(a.width).to(a.device)
    x = torch.rand(a.batch, 3, a.frames, a.size, a.size, device=a.device)
    cuda = a.device.startswith("cuda")
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-6)
    times = []
    for step in range(a.steps + 1):
        start = time.perf_counter()
        if a.mode == "train":
            model.train()
            opt.zero_grad(set_to_none=True)
            with torch.autocast(a.device.split(":")[0], dtype=torch.bfloat16, enabled=a.autocast):
                features = model(x)
            loss = features.float().pow(2).mean()
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.inference_mode(), torch.autocast(a.device.split(":")[0], dtype=torch.bfloat16, enabled=a.autocast):
                model(x)
        if cuda:
            torch.cuda.synchronize()
        if step > 0:
            times.append(time.perf_counter() - start)
    line = f"seconds_per_step={statistics.median(times):.4f} peak_rss_mib={peak_rss_mib():.0f}"
    if cuda:
        line += f" peak_cuda_mib={torch.cuda.max_memory_allocated() / 2**20:.0f}"
    print(line)


if __name__ == "__main__":
    main()
