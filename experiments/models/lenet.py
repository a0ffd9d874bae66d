"""LeNet-300-100 (MLP) and LeNet-5 (conv) for MNIST-sized inputs."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .registry import register_model


class LeNet300(nn.Module):
    """LeNet-300-100: flatten -> 300 -> 100 -> classes, ReLU between (266,610 params on 28x28x1, 10 classes)."""

    classifier_name = "fc3"
    stem_name = "fc1"

    def __init__(self, num_classes: int, in_features: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, 300)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(300, 100)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.fc1(self.flatten(x)))
        return self.fc3(self.relu2(self.fc2(x)))


class LeNet5(nn.Module):
    """LeNet-5: conv6@5x5 -> pool -> conv16@5x5 -> pool -> 120 -> 84 -> classes (ReLU, max-pool).

    Images under 32 px get ``padding=2`` on the first conv (so 28 px sees the 32 px geometry).
    """

    classifier_name = "fc3"
    stem_name = "conv1"

    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        pad = 2 if image_size < 32 else 0
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if side < 1:
            raise ConfigError(f"lenet5 needs image_size >= 16, got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.flatten(self.pool2(self.relu2(self.conv2(x))))
        x = self.relu4(self.fc2(self.relu3(self.fc1(x))))
        return self.fc3(x)


@register_model("lenet300")
def lenet300(num_classes: int, in_channels: int, image_size: int) -> LeNet300:
    """LeNet-300-100 MLP on ``in_channels * image_size**2`` inputs."""
    return LeNet300(num_classes, in_channels * image_size ** 2)


@register_model("lenet5")
def lenet5(num_classes: int, in_channels: int, image_size: int) -> LeNet5:
    """Classic LeNet-5 with ReLU and max-pooling."""
    return LeNet5(num_classes, in_channels, image_size)
