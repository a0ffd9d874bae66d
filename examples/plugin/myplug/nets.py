"""A user's model: a builder called like flowprune's registered ones."""
from torch import nn


def tiny_cnn(num_classes: int, in_channels: int, image_size: int, width: int = 8) -> nn.Module:
    """conv-BN-ReLU ×2 → global average pool → linear. ``stem_name``/``classifier_name`` are optional: flowprune
    takes the first conv and the last linear layer when a plug-in does not set them."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))
