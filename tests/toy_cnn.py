"""A toy CNN with named parts (stem conv0 protected, units conv1 and conv2) for reference computations."""
import torch
from torch import nn


class Toy(nn.Module):
    stem_name, classifier_name = "conv0", "fc"

    def __init__(self, c=6, classes=4):
        super().__init__()
        self.conv0, self.relu0 = nn.Conv2d(2, c, 3, padding=1), nn.ReLU()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(c, 5, 3, padding=1), nn.ReLU()
        self.pool, self.flat, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, classes)
        with torch.no_grad():   # non-trivial BN statistics
            self.bn1.running_mean.uniform_(-0.3, 0.3)
            self.bn1.running_var.uniform_(0.5, 1.5)
            self.bn1.weight.uniform_(0.5, 1.5)
            self.bn1.bias.uniform_(-0.2, 0.2)

    def trunk1(self, x):   # Y of unit conv1 (input of conv2)
        return self.relu1(self.bn1(self.conv1(self.relu0(self.conv0(x)))))

    def head1(self, y):
        return self.fc(self.flat(self.pool(self.relu2(self.conv2(y)))))

    def forward(self, x):
        return self.head1(self.trunk1(x))


def batches(n=3, b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 2, 6, 6, generator=g), torch.randint(0, 4, (b,), generator=g)) for _ in range(n)]
