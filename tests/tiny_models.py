"""Tiny models built in code for the tests (no downloads). Each is seeded locally."""

from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Conv + depthwise conv + BN + ReLU6 + hardswish + pooling + linear head: a MobileNet in miniature."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.pw = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        x = self.pw(self.dw(self.stem(x)))
        return self.head(torch.flatten(self.pool(x), 1))


class TinyTransformer(nn.Module):
    """One pre-norm encoder block: LayerNorm, multi-head self-attention, GELU MLP."""

    def __init__(self, dim: int = 32, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        q = q.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = k.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = v.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class TwoInput(nn.Module):
    """An image and a feature vector in, two outputs out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(6, 4)
        self.out = nn.Linear(8, 3)

    def forward(self, image, features):
        a = torch.relu(self.conv(image)).mean(dim=(2, 3))
        b = torch.tanh(self.fc(features))
        return self.out(torch.cat([a, b], dim=1)), a * 2.0


def seeded(cls, seed: int = 0, **kw):
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        m = cls(**kw).eval()
        for mod in m.modules():  # non-trivial BN statistics so folding is exercised
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
    finally:
        torch.random.set_rng_state(gen_state)
    return m


def cnn_inputs():
    return (torch.randn(1, 3, 32, 32),)


def transformer_inputs():
    return (torch.randn(1, 16, 32),)


def two_inputs():
    return (torch.randn(1, 3, 16, 16), torch.randn(1, 6))


# factories for --factory
def cnn_factory():
    return seeded(TinyCNN), cnn_inputs()


def transformer_factory():
    return seeded(TinyTransformer), transformer_inputs()


def two_input_factory():
    return seeded(TwoInput), two_inputs()
