"""A MobileNetV2-shaped network (1.0, 224) built in code: the published architecture (inverted
residuals, ReLU6, 1280-channel head), random weights. The latency estimator's reference table has
MobileNet v2 numbers; this lets a test build the real graph and estimate it."""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin, cout, k=1, s=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_conv_bn(cin, hidden)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers, cin = [_conv_bn(3, 32, 3, 2)], 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn(cin, 1280))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def mobilenet_v2_factory():
    """``--factory mobilenet_v2:mobilenet_v2_factory``: seeded weights, a 1x3x224x224 example."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return MobileNetV2().eval(), (torch.randn(1, 3, 224, 224),)
    finally:
        torch.random.set_rng_state(state)
