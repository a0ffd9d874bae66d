"""VGG-19-BN for CIFAR as in the GraSP repository: bias-free 3x3 convs + BN + ReLU, one linear classifier."""
from __future__ import annotations

import torch
from torch import nn

from .registry import register_model
from .resnet_cifar import init_weights, scaled

VGG19_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                              512, 512, 512, 512, "M", 512, 512, 512, 512]


class VGGCifar(nn.Module):
    """``features`` (conv-BN-ReLU, ``M`` = 2x2 max-pool) -> global avg-pool -> flatten -> ``classifier``.

    GraSP uses ``AvgPool2d(2)`` on the 2x2 map of a 32 px input; ``AdaptiveAvgPool2d(1)`` is the same
    there and also handles 28 px inputs.
    """

    classifier_name = "classifier"
    stem_name = "features.0"

    def __init__(self, cfg: list[int | str], num_classes: int, in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            out = scaled(int(v), width)
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


@register_model("vgg19_cifar")
def vgg19_cifar(num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> VGGCifar:
    """VGG-19-BN (GraSP variant); 20,024,000 conv+fc weights for 10 classes."""
    return VGGCifar(VGG19_CFG, num_classes, in_channels, width)
