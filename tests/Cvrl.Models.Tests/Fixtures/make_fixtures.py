"""Makes the small fixtures of Cvrl.Models.Tests with Debian's PyTorch (python3-torch 1.13, python3-torchvision 0.14).

Run at development time only (tests never run Python):  /usr/bin/python3 make_fixtures.py

Weights and inputs come from a formula that the C# tests evaluate too (DeterministicWeights.cs), so no large weight
file is committed: only torchvision's outputs for the full-size r3d_18, and one tiny state dict written by real
PyTorch to prove the file format.
"""
import json
import math

import torch
import torchvision

torch.set_num_threads(1)


def phase(name):
    return (sum(ord(c) for c in name) % 1000) / 100.0


def formula(name, shape, kind, fan_in):
    n = 1
    for s in shape:
        n *= s
    p = phase(name)
    s = torch.sin(torch.arange(n, dtype=torch.float64) * 0.7 + p)
    if kind == "conv":
        v = math.sqrt(2.0 / fan_in) * s
    elif kind == "linear":
        v = math.sqrt(1.0 / fan_in) * s
    elif kind == "bias":
        v = 0.01 * s
    elif kind == "bn_weight":
        v = 1.0 + 0.1 * s
    elif kind == "bn_bias":
        v = 0.1 * s
    elif kind == "running_mean":
        v = 0.1 * s
    elif kind == "running_var":
        v = 1.0 + 0.25 * (1.0 + s)
    else:
        raise ValueError(kind)
    return v.to(torch.float32).reshape(shape)


def kind_of(name, t):
    if name.endswith("running_mean"):
        return "running_mean"
    if name.endswith("running_var"):
        return "running_var"
    if t.dim() == 5:
        return "conv"
    if t.dim() == 2:
        return "linear"
    if name.startswith("fc.") and name.endswith("bias"):
        return "bias"
    return "bn_weight" if name.endswith("weight") else "bn_bias"


def fill(state):
    out = {}
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(0, dtype=torch.int64)
            continue
        fan_in = 1
        for s in t.shape[1:]:
            fan_in *= s
        out[name] = formula(name, list(t.shape), kind_of(name, t), fan_in)
    return out


def clip_input(shape):
    n = 1
    for s in shape:
        n *= s
    return torch.sin(torch.arange(n, dtype=torch.float64) * 0.013 + 0.3).to(torch.float32).reshape(shape)


# 1. Full-size torchvision r3d_18 (400 classes): outputs for a small input.
model = torchvision.models.video.r3d_18(num_classes=400)
model.load_state_dict(fill(model.state_dict()))
model.eval()
x = clip_input([1, 3, 8, 32, 32])
with torch.no_grad():
    h = model.stem(x)
    h = model.layer4(model.layer3(model.layer2(model.layer1(h))))
    features = model.avgpool(h).flatten(1)
    logits = model.fc(features)
json.dump({
    "model": "torchvision.models.video.r3d_18(num_classes=400), torch " + torch.__version__ + ", torchvision " + torchvision.__version__,
    "input_shape": [1, 3, 8, 32, 32],
    "features": [round(float(v), 7) for v in features[0]],
    "logits": [round(float(v), 7) for v in logits[0]],
}, open("r3d18_outputs.json", "w"), indent=0)


# 2. A tiny R3D-18 state dict (width 1/32, 10 classes) in Cvrl's / torchvision's key layout, saved by torch.save.
def tiny_r3d18_state(width=2, classes=10):
    sd = {}

    def conv(prefix, cin, cout, k):
        sd[prefix + ".weight"] = torch.empty(cout, cin, *k)

    def bn(prefix, c):
        sd[prefix + ".weight"] = torch.empty(c)
        sd[prefix + ".bias"] = torch.empty(c)
        sd[prefix + ".running_mean"] = torch.empty(c)
        sd[prefix + ".running_var"] = torch.empty(c)
        sd[prefix + ".num_batches_tracked"] = torch.empty(())

    conv("stem.0", 3, width, (3, 7, 7))
    bn("stem.1", width)
    cin = width
    for stage in range(4):
        planes = width << stage
        for b in range(2):
            p = f"layer{stage + 1}.{b}"
            conv(p + ".conv1.0", cin, planes, (3, 3, 3))
            bn(p + ".conv1.1", planes)
            conv(p + ".conv2.0", planes, planes, (3, 3, 3))
            bn(p + ".conv2.1", planes)
            if b == 0 and stage > 0:
                conv(p + ".downsample.0", cin, planes, (1, 1, 1))
                bn(p + ".downsample.1", planes)
            cin = planes
    sd["fc.weight"] = torch.empty(classes, cin)
    sd["fc.bias"] = torch.empty(classes)
    return sd


torch.save(fill(tiny_r3d18_state()), "r3d18_tiny_w2_c10.pt")
print("wrote r3d18_outputs.json and r3d18_tiny_w2_c10.pt")
