"""CIFAR-style ResNets: 3x3 stride-1 stem, no max-pool, 1x1-conv+BN projection shortcuts (option B).

- ``resnet8/20/32/56``: He et al. 2016, three stages of 16/32/64 channels, ``(depth - 2) / 6`` basic blocks each.
- ``resnet18_cifar`` / ``resnet50_cifar``: four stages of 64..512 base channels, BasicBlock [2,2,2,2] /
  Bottleneck [3,4,6,3] (stride on the 3x3 conv, as in torchvision).

Every builder takes ``width`` (channel multiplier, default 1.0). Module names follow torchvision
(``conv1``, ``layerK.i.conv1``, ``downsample``, ``fc``); each ReLU use is its own ``nn.ReLU`` module.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .registry import register_model


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, int(round(channels * width)))


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    """1x1 conv + BN shortcut when the shape changes, else ``None`` (identity)."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convs; ``relu2`` follows the residual addition."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = projection(in_planes, planes, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand (x4); ``relu3`` follows the residual addition."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.downsample = projection(in_planes, out_planes, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + identity)


class CifarResNet(nn.Module):
    """3x3 stem -> stages ``layer1..layerN`` (first stride 1, then stride 2) -> global avg-pool -> ``fc``."""

    classifier_name = "fc"
    stem_name = "conv1"

    def __init__(self, block: type[BasicBlock | Bottleneck], blocks: Sequence[int], planes: Sequence[int],
                 num_classes: int, in_channels: int, stem_planes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem_planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_planes)
        self.relu = nn.ReLU()
        in_planes = stem_planes
        for k, (n, p) in enumerate(zip(blocks, planes), start=1):
            layer = []
            for i in range(n):
                layer.append(block(in_planes, p, stride=2 if (i == 0 and k > 1) else 1))
                in_planes = p * block.expansion
            self.add_module(f"layer{k}", nn.Sequential(*layer))
        self.num_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for k in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{k}")(x)
        return self.fc(self.flatten(self.avgpool(x)))


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out) convs, unit/zero BN, PyTorch-default linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _he_resnet(depth: int, num_classes: int, in_channels: int, width: float) -> CifarResNet:
    n = (depth - 2) // 6
    planes = [scaled(c, width) for c in (16, 32, 64)]
    return CifarResNet(BasicBlock, [n] * 3, planes, num_classes, in_channels, stem_planes=planes[0])


def _imagenet_shaped(block: type[BasicBlock | Bottleneck], blocks: Sequence[int], num_classes: int,
                     in_channels: int, width: float) -> CifarResNet:
    planes = [scaled(c, width) for c in (64, 128, 256, 512)]
    return CifarResNet(block, blocks, planes, num_classes, in_channels, stem_planes=planes[0])


@register_model("resnet8")
def resnet8(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet-8 (1 block per stage)."""
    return _he_resnet(8, num_classes, in_channels, width)


@register_model("resnet20")
def resnet20(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet-20 (3 blocks per stage)."""
    return _he_resnet(20, num_classes, in_channels, width)


@register_model("resnet32")
def resnet32(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet-32 (5 blocks per stage)."""
    return _he_resnet(32, num_classes, in_channels, width)


@register_model("resnet56")
def resnet56(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet-56 (9 blocks per stage)."""
    return _he_resnet(56, num_classes, in_channels, width)


@register_model("resnet18_cifar")
def resnet18_cifar(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> CifarResNet:
    """ResNet-18 for small images: BasicBlock [2,2,2,2], 64..512 x ``width`` channels."""
    return _imagenet_shaped(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width)


@register_model("resnet50_cifar")
def resnet50_cifar(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> CifarResNet:
    """ResNet-50 for small images: Bottleneck [3,4,6,3]; 23,467,712 conv+fc weights for 10 classes."""
    return _imagenet_shaped(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, width)
