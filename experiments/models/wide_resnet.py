"""Wide ResNets: WRN-depth-k (Zagoruyko & Komodakis 2016) and the ResNet-18-style ``wrn18_2``."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .registry import register_model
from .resnet_cifar import CifarResNet, init_weights, resnet18_cifar


class WideBasic(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3 -> dropout -> BN-ReLU-conv3x3, plus (1x1-conv) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.equal = in_planes == planes and stride == 1
        self.shortcut = None if self.equal else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        # As in the reference code: a projecting block feeds the pre-activation to its shortcut.
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """conv3x3(16) -> 3 groups of ``(depth-4)/6`` blocks at 16k/32k/64k channels -> BN-ReLU -> pool -> ``fc``."""

    classifier_name = "fc"
    stem_name = "conv1"

    def __init__(self, depth: int, widen_factor: int, dropout: float, num_classes: int, in_channels: int) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ConfigError(f"wrn depth must be 6n+4 with n >= 1 (e.g. 16, 22, 28, 40), got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        in_planes = 16
        for k, planes in enumerate(widths, start=1):
            blocks = []
            for i in range(n):
                blocks.append(WideBasic(in_planes, planes, stride=2 if (i == 0 and k > 1) else 1, dropout=dropout))
                in_planes = planes
            self.add_module(f"layer{k}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(self.relu(self.bn(x)))))


@register_model("wrn")
def wrn(num_classes: int, in_channels: int, image_size: int, depth: int = 16, widen_factor: int = 2,
        dropout: float = 0.0) -> WideResNet:
    """WRN-``depth``-``widen_factor`` (default WRN-16-2)."""
    return WideResNet(int(depth), int(widen_factor), float(dropout), num_classes, in_channels)


@register_model("wrn18_2")
def wrn18_2(num_classes: int, in_channels: int, image_size: int) -> CifarResNet:
    """The "WRN-18-2" of the AGF paper: CIFAR ResNet-18 (BasicBlock [2,2,2,2]) with ``width=2``.

    Stages have 128/256/512/1024 channels, so the widest stage has 1024 = 512 * 2 channels.
    """
    return resnet18_cifar(num_classes, in_channels, image_size, width=2.0)
