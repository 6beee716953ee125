"""Makes the model-zoo fixtures of Cvrl.Models.Tests with Debian's PyTorch (python3-torch 1.13, python3-numpy).

Run at development time only (tests never run Python):  /usr/bin/python3 make_zoo_fixtures.py

For each of three video model zoos this script defines a reference network written for this project: a Slow-R50
(stem 1x7x7 with a 1x3x3 max pool, bottlenecks whose first convolution is 3x1x1 in the last two stages, spatial stride
on the 3x3 convolution, 1x1x1 projection shortcuts) with that zoo's module names and forward pass:

- PySlowFast (`s1.pathway0_stem.conv`, `s2.pathway0_res0.branch2.a`, `head.projection`), saved as its training loop
  saves checkpoints: {"epoch", "model_state", "optimizer_state", "cfg": the YAML text}; and a self-supervised variant
  ({"model_state": backbone.* with an MLP projection head, backbone_hist.* momentum copy, a predictor}).
- pytorchvideo's hub (`blocks.0.conv`, `blocks.1.res_blocks.0.branch2.conv_a`, `blocks.5.proj`): {"model_state"}.
- mmaction2 (`backbone.conv1.conv`, `backbone.layer1.0.conv1.bn`, `cls_head.fc_cls`): {"meta", "state_dict",
  "optimizer"}, with a NumPy float and an mmengine-style ConfigDict in meta, in torch's legacy (pre-1.6) file format.

Narrow variants (width 1/32, 10 classes) are saved in each format with their outputs on a fixed input; weights come
from a formula (the one of make_fixtures.py) keyed by each zoo's own parameter names. For the full-width Slow-R50 only
the parameter names and shapes of each zoo and the outputs on a small input are kept: the C# tests rebuild the weights
from the same formula, so no 128 MB file is committed.
"""
import json
import math
import sys
import types

import numpy
import torch
import torch.nn as nn

torch.set_num_threads(1)

KINETICS_MEAN = [0.45, 0.45, 0.45]  # PySlowFast and pytorchvideo: inputs in [0, 1]
KINETICS_STD = [0.225, 0.225, 0.225]
IMAGENET_MEAN_255 = [123.675, 116.28, 103.53]  # mmaction2: inputs in [0, 255]
IMAGENET_STD_255 = [58.395, 57.12, 57.375]
BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
CONV_A_KT = [1, 1, 3, 3]  # Slow / SlowOnly


def phase(name):
    return (sum(ord(c) for c in name) % 1000) / 100.0


def kind_of(name, t):
    if name.endswith("running_mean"):
        return "running_mean"
    if name.endswith("running_var"):
        return "running_var"
    if t.dim() == 5:
        return "conv"
    if t.dim() == 2:
        return "linear"
    return "bn_weight" if name.endswith("weight") else "bias"


def formula(name, shape, kind):
    n = 1
    for s in shape:
        n *= s
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    s = torch.sin(torch.arange(n, dtype=torch.float64) * 0.7 + phase(name))
    v = {
        "conv": lambda: math.sqrt(2.0 / fan_in) * s,
        "linear": lambda: math.sqrt(1.0 / fan_in) * s,
        "bias": lambda: 0.1 * s,
        "bn_weight": lambda: 1.0 + 0.1 * s,
        "running_mean": lambda: 0.1 * s,
        "running_var": lambda: 1.0 + 0.25 * (1.0 + s),
    }[kind]()
    return v.to(torch.float32).reshape(shape)


def fill(module):
    state = module.state_dict()
    out = {}
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(7, dtype=torch.int64)
        else:
            out[name] = formula(name, list(t.shape), kind_of(name, t))
    module.load_state_dict(out)
    return module


def clip_input(shape):
    n = 1
    for s in shape:
        n *= s
    # In [0, 1], as Cvrl feeds its encoders.
    v = 0.5 + 0.5 * torch.sin(torch.arange(n, dtype=torch.float64) * 0.013 + 0.3)
    return v.to(torch.float32).reshape(shape)


def w(c, width):
    return max(1, int(round(c * width)))


def conv3d(cin, cout, k, s):
    return nn.Conv3d(cin, cout, k, s, tuple(x // 2 for x in k), bias=False)


def stem_forward(conv, bn, x):
    x = torch.relu(bn(conv(x)))
    return nn.functional.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))


# ---------------------------------------------------------------- PySlowFast naming


class SfBottleneck(nn.Module):
    def __init__(self, cin, planes, kt, stride):
        super().__init__()
        self.branch2 = nn.Module()
        self.branch2.a = conv3d(cin, planes, (kt, 1, 1), (1, 1, 1))
        self.branch2.a_bn = nn.BatchNorm3d(planes)
        self.branch2.b = conv3d(planes, planes, (1, 3, 3), (1, stride, stride))
        self.branch2.b_bn = nn.BatchNorm3d(planes)
        self.branch2.c = conv3d(planes, planes * 4, (1, 1, 1), (1, 1, 1))
        self.branch2.c_bn = nn.BatchNorm3d(planes * 4)
        if cin != planes * 4 or stride != 1:
            self.branch1 = conv3d(cin, planes * 4, (1, 1, 1), (1, stride, stride))
            self.branch1_bn = nn.BatchNorm3d(planes * 4)

    def forward(self, x):
        b = self.branch2
        y = torch.relu(b.a_bn(b.a(x)))
        y = torch.relu(b.b_bn(b.b(y)))
        y = b.c_bn(b.c(y))
        short = self.branch1_bn(self.branch1(x)) if hasattr(self, "branch1") else x
        return torch.relu(short + y)


class SfMlp(nn.Module):
    """PySlowFast's MLPHead with BatchNorm: Linear (no bias) -> BN -> ReLU, ..., Linear (bias)."""

    def __init__(self, din, dout, hidden, layers):
        super().__init__()
        mods = [nn.Linear(din, hidden, bias=False)]
        for i in range(1, layers):
            mods += [nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            last = i == layers - 1
            mods.append(nn.Linear(hidden, dout if last else hidden, bias=last))
        self.projection = nn.Sequential(*mods)

    def forward(self, x):
        return self.projection(x)


class SlowFastResNet(nn.Module):
    def __init__(self, depth=50, width=1.0, classes=10, mlp=None):
        super().__init__()
        self.s1 = nn.Module()
        self.s1.pathway0_stem = nn.Module()
        self.s1.pathway0_stem.conv = conv3d(3, w(64, width), (1, 7, 7), (1, 2, 2))
        self.s1.pathway0_stem.bn = nn.BatchNorm3d(w(64, width))
        cin = w(64, width)
        for stage in range(4):
            s = nn.Module()
            planes = w(64 << stage, width)
            for b in range(BLOCKS[depth][stage]):
                stride = 2 if (b == 0 and stage > 0) else 1
                setattr(s, f"pathway0_res{b}", SfBottleneck(cin, planes, CONV_A_KT[stage], stride))
                cin = planes * 4
            setattr(self, f"s{stage + 2}", s)
        self.head = nn.Module()
        self.head.projection = nn.Linear(cin, classes) if mlp is None else SfMlp(cin, mlp[0], mlp[1], mlp[2])
        self.feature_dim = cin

    def features(self, x):
        x = stem_forward(self.s1.pathway0_stem.conv, self.s1.pathway0_stem.bn, x)
        for stage in range(4):
            s = getattr(self, f"s{stage + 2}")
            for b in range(len([n for n, _ in s.named_children()])):
                x = getattr(s, f"pathway0_res{b}")(x)
        return x.mean((2, 3, 4))

    def forward(self, x):
        return self.head.projection(self.features(x))


# ---------------------------------------------------------------- pytorchvideo naming


class PtvBranch2(nn.Module):
    def __init__(self, cin, planes, kt, stride):
        super().__init__()
        self.conv_a = conv3d(cin, planes, (kt, 1, 1), (1, 1, 1))
        self.norm_a = nn.BatchNorm3d(planes)
        self.conv_b = conv3d(planes, planes, (1, 3, 3), (1, stride, stride))
        self.norm_b = nn.BatchNorm3d(planes)
        self.conv_c = conv3d(planes, planes * 4, (1, 1, 1), (1, 1, 1))
        self.norm_c = nn.BatchNorm3d(planes * 4)

    def forward(self, x):
        x = torch.relu(self.norm_a(self.conv_a(x)))
        x = torch.relu(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class PtvResBlock(nn.Module):
    def __init__(self, cin, planes, kt, stride):
        super().__init__()
        if cin != planes * 4 or stride != 1:
            self.branch1_conv = conv3d(cin, planes * 4, (1, 1, 1), (1, stride, stride))
            self.branch1_norm = nn.BatchNorm3d(planes * 4)
        self.branch2 = PtvBranch2(cin, planes, kt, stride)

    def forward(self, x):
        short = self.branch1_norm(self.branch1_conv(x)) if hasattr(self, "branch1_conv") else x
        return torch.relu(short + self.branch2(x))


class PtvStage(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.res_blocks = nn.ModuleList(blocks)

    def forward(self, x):
        for b in self.res_blocks:
            x = b(x)
        return x


class PtvStem(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = conv3d(3, c, (1, 7, 7), (1, 2, 2))
        self.norm = nn.BatchNorm3d(c)

    def forward(self, x):
        return stem_forward(self.conv, self.norm, x)


class PtvHead(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.proj = nn.Linear(cin, classes)


class PytorchvideoResNet(nn.Module):
    def __init__(self, depth=50, width=1.0, classes=10):
        super().__init__()
        blocks = [PtvStem(w(64, width))]
        cin = w(64, width)
        for stage in range(4):
            planes = w(64 << stage, width)
            res = []
            for b in range(BLOCKS[depth][stage]):
                stride = 2 if (b == 0 and stage > 0) else 1
                res.append(PtvResBlock(cin, planes, CONV_A_KT[stage], stride))
                cin = planes * 4
            blocks.append(PtvStage(res))
        blocks.append(PtvHead(cin, classes))
        self.blocks = nn.ModuleList(blocks)

    def features(self, x):
        for b in self.blocks[:5]:
            x = b(x)
        return x.mean((2, 3, 4))

    def forward(self, x):
        return self.blocks[5].proj(self.features(x))


# ---------------------------------------------------------------- mmaction2 naming


class MmConvModule(nn.Module):
    def __init__(self, cin, cout, k, s):
        super().__init__()
        self.conv = conv3d(cin, cout, k, s)
        self.bn = nn.BatchNorm3d(cout)

    def forward(self, x, relu=True):
        x = self.bn(self.conv(x))
        return torch.relu(x) if relu else x


class MmBottleneck(nn.Module):
    def __init__(self, cin, planes, kt, stride):
        super().__init__()
        self.conv1 = MmConvModule(cin, planes, (kt, 1, 1), (1, 1, 1))
        self.conv2 = MmConvModule(planes, planes, (1, 3, 3), (1, stride, stride))
        self.conv3 = MmConvModule(planes, planes * 4, (1, 1, 1), (1, 1, 1))
        if cin != planes * 4 or stride != 1:
            self.downsample = MmConvModule(cin, planes * 4, (1, 1, 1), (1, stride, stride))

    def forward(self, x):
        y = self.conv3(self.conv2(self.conv1(x)), relu=False)
        short = self.downsample(x, relu=False) if hasattr(self, "downsample") else x
        return torch.relu(short + y)


class MmBackbone(nn.Module):
    def __init__(self, depth, width):
        super().__init__()
        self.conv1 = MmConvModule(3, w(64, width), (1, 7, 7), (1, 2, 2))
        cin = w(64, width)
        for stage in range(4):
            planes = w(64 << stage, width)
            blocks = []
            for b in range(BLOCKS[depth][stage]):
                stride = 2 if (b == 0 and stage > 0) else 1
                blocks.append(MmBottleneck(cin, planes, CONV_A_KT[stage], stride))
                cin = planes * 4
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.feature_dim = cin

    def forward(self, x):
        x = stem_forward(self.conv1.conv, self.conv1.bn, x)
        for stage in range(4):
            x = getattr(self, f"layer{stage + 1}")(x)
        return x


class MmHead(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.fc_cls = nn.Linear(cin, classes)


class MmRecognizer(nn.Module):
    def __init__(self, depth=50, width=1.0, classes=10):
        super().__init__()
        self.backbone = MmBackbone(depth, width)
        self.cls_head = MmHead(self.backbone.feature_dim, classes)

    def features(self, x):
        return self.backbone(x).mean((2, 3, 4))

    def forward(self, x):
        return self.cls_head.fc_cls(self.features(x))


# ---------------------------------------------------------------- stand-ins for the zoos' metadata classes

def fake_module(name, **classes):
    """Registers a module under the zoo's name so pickle records the same global the zoo's files hold."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
    mod = sys.modules[name]
    for cls_name, cls in classes.items():
        cls.__module__ = name
        cls.__qualname__ = cls_name
        setattr(mod, cls_name, cls)


class ConfigDict(dict):
    pass


fake_module("mmengine.config.config", ConfigDict=ConfigDict)

SLOWFAST_CFG = """DATA:
  INPUT_CHANNEL_NUM:
  - 3
  MEAN:
  - 0.45
  - 0.45
  - 0.45
  NUM_FRAMES: 8
  SAMPLING_RATE: 8
  STD:
  - 0.225
  - 0.225
  - 0.225
  TEST_CROP_SIZE: 256
  TRAIN_CROP_SIZE: 224
MODEL:
  ARCH: slow
  MODEL_NAME: ResNet
  NUM_CLASSES: 10
RESNET:
  DEPTH: 50
  STRIDE_1X1: false
  TRANS_FUNC: bottleneck_transform
"""

MMACTION_CONFIG = """model = dict(
    type='Recognizer3D',
    backbone=dict(type='ResNet3dSlowOnly', depth=50, pretrained=None, lateral=False, conv1_kernel=(1, 7, 7),
                  conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1), norm_eval=False),
    cls_head=dict(type='I3DHead', in_channels=2048, num_classes=10, spatial_type='avg', dropout_ratio=0.5),
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], format_shape='NCTHW'))
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=8, num_clips=1),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
]
"""


def sgd_state(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return opt.state_dict()


def normalised(x, mean, std):
    m = torch.tensor(mean).view(1, 3, 1, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1, 1)
    return (x - m) / s


def outputs(model, x, mean, std, scale=1.0):
    model.eval()
    with torch.no_grad():
        xin = normalised(x * scale, mean, std)
        features = model.features(xin)
        logits = model(xin)
    return features, logits


def values(t):
    return [round(float(v), 7) for v in t.flatten()]


def manifest(module):
    return [[name, list(t.shape)] for name, t in module.state_dict().items()]


WIDTH = 1.0 / 32
x = clip_input([2, 3, 8, 32, 32])
record = {
    "torch": torch.__version__,
    "input_shape": [2, 3, 8, 32, 32],
    "input": "0.5 + 0.5 sin(0.013 i + 0.3) over the flattened input, float32",
    "weights": "formula of make_zoo_fixtures.py keyed by each zoo's parameter names; num_batches_tracked = 7",
}

# PySlowFast, supervised: zip format.
torch.manual_seed(0)
sf = fill(SlowFastResNet(50, WIDTH, 10))
f, l = outputs(sf, x, KINETICS_MEAN, KINETICS_STD)
torch.save({"epoch": 196, "model_state": sf.state_dict(), "optimizer_state": sgd_state(sf), "cfg": SLOWFAST_CFG},
           "zoo_slowfast_slow_r50_w32.pyth")
record["slowfast"] = {"file": "zoo_slowfast_slow_r50_w32.pyth", "features": values(f), "logits": values(l)}

# PySlowFast, self-supervised (ContrastiveModel): backbone with a 3-layer MLP head with BatchNorm, momentum copy,
# predictor. Output of the head = the projection.
ssl = fill(SlowFastResNet(50, WIDTH, 10, mlp=(16, 32, 3)))
hist = fill(SlowFastResNet(50, WIDTH, 10, mlp=(16, 32, 3)))
predictor = fill(SfMlp(16, 16, 32, 2))
state = {}
for k, v in ssl.state_dict().items():
    state["backbone." + k] = v
for k, v in hist.state_dict().items():
    state["backbone_hist." + k] = v * 0.5
for k, v in predictor.state_dict().items():
    state["backbone.head.predictors.0." + k] = v
state["ptr"] = torch.tensor([0])
f, p = outputs(ssl, x, KINETICS_MEAN, KINETICS_STD)
torch.save({"epoch": 200, "model_state": state, "cfg": SLOWFAST_CFG.replace("MODEL_NAME: ResNet", "MODEL_NAME: ContrastiveModel")},
           "zoo_slowfast_ssl_r50_w32.pyth")
record["slowfast_ssl"] = {"file": "zoo_slowfast_ssl_r50_w32.pyth", "features": values(f), "projection": values(p)}

# pytorchvideo hub: zip format, {"model_state"} only.
ptv = fill(PytorchvideoResNet(50, WIDTH, 10))
f, l = outputs(ptv, x, KINETICS_MEAN, KINETICS_STD)
torch.save({"model_state": ptv.state_dict()}, "zoo_pytorchvideo_slow_r50_w32.pyth")
record["pytorchvideo"] = {"file": "zoo_pytorchvideo_slow_r50_w32.pyth", "features": values(f), "logits": values(l)}

# mmaction2: legacy format, meta with a NumPy scalar and a ConfigDict; inputs scaled to [0, 255] before normalising.
mm = fill(MmRecognizer(50, WIDTH, 10))
f, l = outputs(mm, x, IMAGENET_MEAN_255, IMAGENET_STD_255, scale=255.0)
meta = {
    "mmaction2_version": "1.2.0",
    "time": "Tue Oct 3 12:00:00 2023",
    "config": MMACTION_CONFIG,
    "seed": 0,
    "epoch": 256,
    "hook_msgs": {"best_score": numpy.float64(0.7458), "best_ckpt": "best_acc_top1_epoch_256.pth"},
    "cfg_dict": ConfigDict(clip_len=8, frame_interval=8),
    "dataset_meta": {"classes": ("a", "b")},
}
torch.save({"meta": meta, "state_dict": mm.state_dict(), "optimizer": sgd_state(mm)}, "zoo_mmaction2_slowonly_r50_w32.pth",
           _use_new_zipfile_serialization=False)
record["mmaction2"] = {"file": "zoo_mmaction2_slowonly_r50_w32.pth", "features": values(f), "logits": values(l)}

# Full width: names and shapes of each zoo's Slow-R50 (400 classes), outputs of the pytorchvideo one on a small input.
full_x = clip_input([1, 3, 8, 32, 32])
full = {}
for zoo, model in (("slowfast", SlowFastResNet(50, 1.0, 400)), ("pytorchvideo", PytorchvideoResNet(50, 1.0, 400)),
                   ("mmaction2", MmRecognizer(50, 1.0, 400))):
    full[zoo] = {"keys": manifest(model)}
fill_model = fill(PytorchvideoResNet(50, 1.0, 400))
f, l = outputs(fill_model, full_x, KINETICS_MEAN, KINETICS_STD)
full["pytorchvideo"]["input_shape"] = [1, 3, 8, 32, 32]
full["pytorchvideo"]["features_first64"] = values(f[0, :64])
full["pytorchvideo"]["features_sum"] = round(float(f.sum()), 5)
full["pytorchvideo"]["logits_first16"] = values(l[0, :16])
full["slow_r101_slowfast"] = {"keys": manifest(SlowFastResNet(101, 1.0, 400))}
record["full_width"] = full

json.dump(record, open("zoo_outputs.json", "w"), indent=0)
print("wrote zoo_outputs.json and", ", ".join(record[k]["file"] for k in ("slowfast", "slowfast_ssl", "pytorchvideo", "mmaction2")))
