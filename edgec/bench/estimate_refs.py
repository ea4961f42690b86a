"""The published reference latencies and the models they were measured on, described op by op.

The table (``targets/reference-latencies.csv``, shipped with the profiles and read by
``edgec.targets.references``) lists published TFLite / XNNPACK latencies with their source. The
estimator needs each reference model's per-op costs in the same terms it reads from a ``.tflite``
graph (see ``opgraph``); those are computed here from the published architectures (MobileNet
v1/v2/v3, EfficientNet-Lite0-4), with no framework and no download. The MACs this computes are
checked against the table's own MACs column in the tests.
"""

from __future__ import annotations

import functools
import math

from edgec.formats.opgraph import OpCost
from edgec.targets.references import TABLE, RefRow, load_table, reference_rows  # noqa: F401  (the table's API)


# -- the reference architectures, op by op ------------------------------------------------------

class _Net:
    """Tracks the activation shape and appends OpCost records in opgraph's conventions."""

    def __init__(self, size: int, itemsize: int):
        self.h = self.w = size
        self.c = 3
        self.b = itemsize
        self.ops: list[OpCost] = []

    def _add(self, op, kind, macs, nbytes):
        self.ops.append(OpCost(op=op, kind=kind, macs=int(macs), bytes=int(nbytes * self.b)))

    def conv(self, cout: int, k: int = 1, s: int = 1):
        h, w = math.ceil(self.h / s), math.ceil(self.w / s)
        macs = h * w * cout * k * k * self.c
        self._add("CONV_2D", "conv", macs, self.h * self.w * self.c + h * w * cout + k * k * self.c * cout)
        self.h, self.w, self.c = h, w, cout

    def dw(self, k: int, s: int = 1):
        h, w = math.ceil(self.h / s), math.ceil(self.w / s)
        self._add("DEPTHWISE_CONV_2D", "depthwise", h * w * self.c * k * k,
                  self.h * self.w * self.c + h * w * self.c + k * k * self.c)
        self.h, self.w = h, w

    def eltwise(self, op: str, operands: int = 1):
        n = self.h * self.w * self.c
        self._add(op, "elementwise", 0, n * (operands + 1))

    def pool(self):
        self._add("MEAN", "pool", 0, self.h * self.w * self.c + self.c)
        self.h = self.w = 1

    def fc(self, cout: int):
        self._add("FULLY_CONNECTED", "fc", self.c * cout, self.c + cout + self.c * cout)
        self.c = cout

    def se(self, reduced: int):
        """Squeeze-and-excite: global pool, two 1x1 convs, hard-sigmoid, scale."""
        h, w, c = self.h, self.w, self.c
        self.pool()
        self.fc(reduced)
        self.fc(c)
        self.eltwise("HARD_SWISH")
        self.h, self.w = h, w
        self._add("MUL", "elementwise", 0, 2 * h * w * c + c)


def _div8(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v1(net: _Net) -> None:
    net.conv(32, 3, 2)
    for c, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
        net.dw(3, s)
        net.conv(c)
    net.pool()
    net.fc(1000)


def _inverted_residual(net: _Net, exp: int, out: int, k: int, s: int, se: bool = False, hswish: bool = False):
    cin = net.c
    if exp != cin:
        net.conv(exp)
        if hswish:
            net.eltwise("HARD_SWISH")
    net.dw(k, s)
    if hswish:
        net.eltwise("HARD_SWISH")
    if se:
        net.se(_div8(exp / 4))
    net.conv(out)
    if s == 1 and cin == out:
        net.eltwise("ADD", 2)


def mobilenet_v2(net: _Net) -> None:
    net.conv(32, 3, 2)
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)]:
        for i in range(n):
            _inverted_residual(net, net.c * t, c, 3, s if i == 0 else 1)
    net.conv(1280)
    net.pool()
    net.fc(1000)


_V3_LARGE = [(3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1), (5, 72, 40, 1, 0, 2),
             (5, 120, 40, 1, 0, 1), (5, 120, 40, 1, 0, 1), (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1),
             (3, 184, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1),
             (5, 672, 160, 1, 1, 2), (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1)]
_V3_SMALL = [(3, 16, 16, 1, 0, 2), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1), (5, 96, 40, 1, 1, 2),
             (5, 240, 40, 1, 1, 1), (5, 240, 40, 1, 1, 1), (5, 120, 48, 1, 1, 1), (5, 144, 48, 1, 1, 1),
             (5, 288, 96, 1, 1, 2), (5, 576, 96, 1, 1, 1), (5, 576, 96, 1, 1, 1)]


def _mobilenet_v3(net: _Net, table, last: int, head: int) -> None:
    net.conv(16, 3, 2)
    net.eltwise("HARD_SWISH")
    for k, exp, out, se, hs, s in table:
        _inverted_residual(net, exp, out, k, s, bool(se), bool(hs))
    net.conv(last)
    net.eltwise("HARD_SWISH")
    net.pool()
    net.fc(head)
    net.eltwise("HARD_SWISH")
    net.fc(1000)


_LITE = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}
_B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
       (6, 3, 1, 320, 1)]


def efficientnet_lite(net: _Net, width: float, depth: float) -> None:
    """EfficientNet-B0 blocks without squeeze-excite, ReLU6; stem and head not scaled (the Lite rules)."""
    net.conv(32, 3, 2)
    for i, (t, k, s, c, n) in enumerate(_B0):
        repeats = n if i in (0, len(_B0) - 1) else int(math.ceil(depth * n))
        for j in range(repeats):
            _inverted_residual(net, net.c * t, _div8(c * width), k, s if j == 0 else 1)
    net.conv(1280)
    net.pool()
    net.fc(1000)


def _lite(n: int):
    width, depth, size = _LITE[n]
    return size, lambda net: efficientnet_lite(net, width, depth)


REFERENCE_MODELS = {
    "MobileNet v1 1.0 224": (224, mobilenet_v1),
    "MobileNet v2 1.0 224": (224, mobilenet_v2),
    "MobileNet v3 Large 1.0": (224, lambda net: _mobilenet_v3(net, _V3_LARGE, 960, 1280)),
    "MobileNet v3 Small 1.0": (224, lambda net: _mobilenet_v3(net, _V3_SMALL, 576, 1024)),
    **{f"EfficientNet-Lite{n}": _lite(n) for n in range(5)},
}


@functools.lru_cache(maxsize=None)
def reference_ops(model: str, precision: str) -> tuple[OpCost, ...]:
    """The model's ops with bytes at the precision's activation width (int8: 1 byte, else float32)."""
    size, build = REFERENCE_MODELS[model]
    net = _Net(size, 1 if precision == "int8" else 4)
    build(net)
    return tuple(net.ops)
