"""torchvision ImageNet ResNets (``resnet18``, ``resnet50``) with one ``nn.ReLU`` module per use.

The model is a ``torchvision.models.ResNet`` built from block subclasses whose ReLUs are separate,
non-inplace modules, so forward hooks see exactly one layer's post-activation output. ReLUs hold no
state, so state dicts are exactly torchvision's and its pretrained weights load unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet as tv

from .loading import download_guard
from .registry import register_model


class BasicBlock(tv.BasicBlock):
    """torchvision BasicBlock with ``relu`` (after bn1) and ``relu2`` (after the addition)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relu = nn.ReLU()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + identity)


class Bottleneck(tv.Bottleneck):
    """torchvision Bottleneck (stride on the 3x3) with ``relu``, ``relu2``, ``relu3`` (after the addition)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relu = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + identity)


def _torchvision_resnet(name: str, block: type[tv.BasicBlock | tv.Bottleneck], layers: list[int],
                        weights: ResNet18_Weights | ResNet50_Weights, num_classes: int, in_channels: int,
                        pretrained: bool) -> tv.ResNet:
    """Build, optionally load ImageNet weights, then adapt the stem to ``in_channels`` and ``fc`` to ``num_classes``."""
    model = tv.ResNet(block, layers, num_classes=1000)
    model.relu = nn.ReLU()
    if pretrained:
        with download_guard(name):
            state = weights.get_state_dict(progress=True, check_hash=True)
        model.load_state_dict(state)
    if in_channels != 3:
        model.conv1 = _adapt_stem(model.conv1, in_channels, keep_weights=pretrained)
    if num_classes != 1000:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    model.classifier_name = "fc"
    model.stem_name = "conv1"
    return model


def _adapt_stem(conv: nn.Conv2d, in_channels: int, keep_weights: bool) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels``; pretrained RGB filters are averaged and tiled (scale-preserving)."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False)
    if keep_weights:
        with torch.no_grad():
            mean = conv.weight.mean(dim=1, keepdim=True) * (3.0 / in_channels)
            new.weight.copy_(mean.expand(-1, in_channels, -1, -1))
    else:
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    return new


@register_model("resnet18")
def resnet18(num_classes: int, in_channels: int, image_size: int, pretrained: bool = False) -> tv.ResNet:
    """torchvision ResNet-18; ``pretrained`` loads ``ResNet18_Weights.IMAGENET1K_V1``."""
    return _torchvision_resnet("resnet18", BasicBlock, [2, 2, 2, 2], ResNet18_Weights.IMAGENET1K_V1,
                               num_classes, in_channels, pretrained)


@register_model("resnet50")
def resnet50(num_classes: int, in_channels: int, image_size: int, pretrained: bool = False) -> tv.ResNet:
    """torchvision ResNet-50; ``pretrained`` loads ``ResNet50_Weights.IMAGENET1K_V2``."""
    return _torchvision_resnet("resnet50", Bottleneck, [3, 4, 6, 3], ResNet50_Weights.IMAGENET1K_V2,
                               num_classes, in_channels, pretrained)
