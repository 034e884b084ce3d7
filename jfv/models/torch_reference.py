"""PyTorch reference networks with torchvision's (and akamaster's) exact module layout and key names.

``jfv.convert`` loads a checkpoint into one of these with ``load_state_dict(strict=True)`` and
checks that the converted Flax network computes the same activations on random inputs. Each
``forward`` returns the named activations jfv's Flax modules return, NCHW (vectors (N, C)).

Requires torch (``pip install -e '.[torch]'``). Only the registry imports it, lazily: each entry names
its reference as a ``"jfv.models.torch_reference:function"`` string (``jfv.models.registry``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision


class _Normalise(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("m", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("s", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.m.to(x.dtype)) / self.s.to(x.dtype)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.resnet.ResNet, returning jfv's named activations."""

    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.norm = _Normalise(IMAGENET_MEAN, IMAGENET_STD)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
            setattr(self, f"layer{i}", self._make_layer(block, planes, n, 1 if i == 1 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        out = {}
        x = out["conv1"] = self.conv1(self.norm(x))
        x = out["bn1"] = self.bn1(x)
        x = out["relu"] = self.relu(x)
        x = out["maxpool"] = self.maxpool(x)
        x = _stages(self, x, out, 4)
        x = out["avgpool"] = torch.flatten(self.avgpool(x), 1)
        out["logits"] = self.fc(x)
        return out


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class CifarBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10 resnet.BasicBlock with option A."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


# Its forward records the same named outputs as ResNet's above (the shared names are what parity tests
# compare): the stages through ``_stages``; the stems and pooling differ, so each class keeps its own forward.
class CifarResNet(nn.Module):
    """akamaster/pytorch_resnet_cifar10 resnet.ResNet, returning jfv's named activations."""

    def __init__(self, num_blocks, num_classes=10, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.norm = _Normalise(mean, std)
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        for i, planes in enumerate((16, 32, 64), start=1):
            stride = 1 if i == 1 else 2
            blocks = []
            for s in [stride] + [1] * (num_blocks - 1):
                blocks.append(CifarBlock(self.in_planes, planes, s))
                self.in_planes = planes
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = {}
        x = out["conv1"] = self.conv1(self.norm(x))
        x = out["bn1"] = self.bn1(x)
        x = out["relu"] = F.relu(x)
        x = _stages(self, x, out, 3)
        x = out["avgpool"] = F.avg_pool2d(x, x.size()[3]).view(x.size(0), -1)
        out["logits"] = self.linear(x)
        return out


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """torchvision.models.vgg16 (cfg D, no batch norm), returning jfv's named activations."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.norm = _Normalise(IMAGENET_MEAN, IMAGENET_STD)
        layers, c = [], 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        out = {}
        x = self.norm(x)
        b, i = 1, 1
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                out[f"conv{b}_{i}"] = x
            elif isinstance(layer, nn.ReLU):
                out[f"relu{b}_{i}"] = x
                i += 1
            else:
                out[f"pool{b}"] = x
                b, i = b + 1, 1
        return _head(self, x, out, ("fc6", "relu6", None, "fc7", "relu7", None, "logits"))


class AlexNet(nn.Module):
    """torchvision.models.alexnet, returning jfv's named activations."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.norm = _Normalise(IMAGENET_MEAN, IMAGENET_STD)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        out = {}
        x = self.norm(x)
        n = 0
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                n += 1
                out[f"conv{n}"] = x
            elif isinstance(layer, nn.ReLU):
                out[f"relu{n}"] = x
            else:
                out[f"pool{n}"] = x
        return _head(self, x, out, (None, "fc6", "relu6", None, "fc7", "relu7", "logits"))


def _stages(net, x, out, n):
    """Runs ``net.layer1`` .. ``net.layer<n>``, recording each block as ``layerS.B`` and each stage as ``layerS``."""
    for s in range(1, n + 1):
        for b, block in enumerate(getattr(net, f"layer{s}")):
            x = out[f"layer{s}.{b}"] = block(x)
        out[f"layer{s}"] = x
    return x


def _head(net, x, out, names):
    x = out["avgpool"] = net.avgpool(x)
    x = torch.flatten(x, 1)
    for layer, name in zip(net.classifier, names):
        x = layer(x)
        if name:
            out[name] = x
    return out


def resnet(depth: int) -> ResNet:
    """torchvision's ResNet of the given depth (the registry entries' reference)."""
    from jfv.models.resnet import RESNET_STAGES

    kind, stages = RESNET_STAGES[depth]
    return ResNet(Bottleneck if kind == "bottleneck" else BasicBlock, stages)


def cifar_resnet(depth: int) -> CifarResNet:
    """akamaster's CIFAR ResNet of the given depth (6n + 2)."""
    return CifarResNet((depth - 2) // 6)


def build(name: str) -> nn.Module:
    """The reference network of the model registered in jfv under ``name``, in eval mode, float32."""
    from jfv import models
    from jfv.models import registry

    return registry.torch_reference(models.entry(name))
