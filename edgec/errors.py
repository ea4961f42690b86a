"""The errors edgec raises. Each one says what went wrong, where, and what to do next.

Library code raises these and never exits the process; the CLI maps each class to a documented
exit code (see ``EXIT_CODES`` and the README) and prints one line (``--debug`` adds the traceback).
"""

from __future__ import annotations


class EdgecError(Exception):
    """Base class. ``what``: the problem; ``where``: file, node, field; ``hint``: what to do next."""

    exit_code = 1
    kind = "error"

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None):
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: ")
        parts.append(self.what)
        if self.hint:
            parts.append(f" ({self.hint})")
        return "".join(parts).replace("\n", " ")


class UsageError(EdgecError):
    """A flag or option that makes no sense, or a combination that conflicts."""

    exit_code = 2
    kind = "usage"


class InputError(EdgecError):
    """The model file is missing, empty, truncated, of the wrong kind, or refused (untrusted pickle)."""

    exit_code = 3
    kind = "input"


class UnsupportedModelError(EdgecError):
    """The model is readable but cannot go down the route: unsupported ops, unresolved dynamic dims."""

    exit_code = 4
    kind = "unsupported"


class UnsupportedOpsError(UnsupportedModelError):
    """Every op of the graph that a stage cannot handle, with the node names, found in one scan."""

    def __init__(self, stage: str, ops: dict[str, list[str]], *, where: str | None = None,
                 hint: str | None = None):
        self.stage = stage
        self.ops = {op: sorted(set(nodes)) for op, nodes in sorted(ops.items())}
        listing = "; ".join(
            f"{op} at {', '.join(nodes[:5])}{' and %d more' % (len(nodes) - 5) if len(nodes) > 5 else ''}"
            for op, nodes in self.ops.items()
        )
        n_nodes = sum(len(v) for v in self.ops.values())
        what = (f"{len(self.ops)} unsupported op type(s) in {n_nodes} node(s) for stage "
                f"'{stage}': {listing}")
        super().__init__(what, where=where, hint=hint or
                         "rewrite these ops in the source model, or force another --route")


class ConversionError(EdgecError):
    """A converter (torch.onnx, onnx2tf, TFLiteConverter, tf2onnx) failed."""

    exit_code = 5
    kind = "conversion"


class NoRouteError(ConversionError):
    """Every candidate route failed to convert; the message lists each attempt with its reason."""

    def __init__(self, source: str, attempts: list[dict], *, where: str | None = None, unsupported: bool = False):
        self.attempts = attempts
        if unsupported:  # every route stopped at ops it cannot convert: that is the model, not a tool
            self.exit_code = UnsupportedModelError.exit_code
        super().__init__(f"no route converts this {source} model ({len(attempts)} tried): "
                         f"{self.listing(attempts)}", where=where,
                         hint="see each attempt's reason; --route forces one route, --debug shows tool logs")

    @staticmethod
    def listing(attempts: list[dict]) -> str:
        return "; ".join(f"({i}) {' -> '.join(a['route'])}"
                         f"{' [' + ', '.join(f'{k}={v}' for k, v in a['options'].items()) + ']' if a.get('options') else ''}"
                         f": {a['reason']}" for i, a in enumerate(attempts, 1))


class TargetError(EdgecError):
    """An unknown target name or an invalid target profile."""

    exit_code = 6
    kind = "target"


class OutputError(EdgecError):
    """The output directory or cache cannot be written."""

    exit_code = 7
    kind = "output"


class ParityError(EdgecError):
    """A converted artifact's numbers miss the target's parity budget."""

    exit_code = 8
    kind = "parity"


class DependencyError(EdgecError):
    """A heavy framework edgec needs for this step is not installed."""

    exit_code = 9
    kind = "dependency"


class RuntimeCrashError(EdgecError):
    """A framework process died with a signal (SIGFPE, SIGSEGV, SIGABRT) or ran past its time limit."""

    exit_code = 11
    kind = "crash"


class DeviceError(EdgecError):
    """A real device (``--device ssh://`` or ``adb://``) could not run the job; the subclasses say why."""

    exit_code = 20
    kind = "device"


class DeviceUnreachableError(DeviceError):
    """The device cannot be reached: connection refused, no route, unknown host, adb device not found."""

    exit_code = 20


class DeviceAuthError(DeviceError):
    """The device refused the login: wrong or missing key, host key mismatch, adb unauthorized."""

    exit_code = 21


class DeviceRuntimeError(DeviceError):
    """The device lacks what the job needs: its python, numpy, a TFLite runtime, or benchmark_model."""

    exit_code = 22


class DeviceTimeoutError(DeviceError):
    """A call to the device ran past its time limit (it was killed; nothing is left running)."""

    exit_code = 23


class DeviceCrashError(DeviceError):
    """The runner on the device died or returned something unreadable (its stderr is in the message)."""

    exit_code = 24


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug: please report it with --debug output)",
    2: UsageError.__doc__.strip(),
    3: InputError.__doc__.strip(),
    4: UnsupportedModelError.__doc__.strip(),
    5: ConversionError.__doc__.strip(),
    6: TargetError.__doc__.strip(),
    7: OutputError.__doc__.strip(),
    8: ParityError.__doc__.strip(),
    9: DependencyError.__doc__.strip(),
    10: "benchmark regression: `edgec bench --baseline --fail-on` found the metric beyond its noise-aware bound",
    11: RuntimeCrashError.__doc__.strip(),
    12: "`edgec bench --baseline --fail-on`: nothing to compare: the baseline or this run has no measurement "
        "(--allow-unmeasured lets that pass)",
    17: "`edgec matrix`: one or more model@target builds failed (matrix.md lists each with its reason)",
    18: "`edgec cache verify`: corrupt cache entries were found (listed)",
    20: DeviceUnreachableError.__doc__.strip(),
    21: DeviceAuthError.__doc__.strip(),
    22: DeviceRuntimeError.__doc__.strip(),
    23: DeviceTimeoutError.__doc__.strip(),
    24: DeviceCrashError.__doc__.strip(),
    130: "interrupted (Ctrl-C); nothing half-written is left in the output directory",
}


_NOISY = ("tensorflow", "onnx2tf", "tf_keras", "tf2onnx", "ai_edge_litert", "mediapipe")


def require(module: str, *, extra: str = "convert", purpose: str = ""):
    """Import a heavy optional module lazily; a missing one is a user error with an install hint."""
    import importlib
    import sys

    from edgec.logs import captured, quiet_env

    # TensorFlow and absl print C++ INFO lines on import and on every conversion; keep the user's
    # terminal for edgec's own progress unless they asked otherwise (--debug: see edgec.logs).
    quiet_env()
    try:
        if module.split(".")[0] in _NOISY and module not in sys.modules:
            with captured():  # absl's pre-init lines on import (see edgec.logs)
                return importlib.import_module(module)
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            f"'{module}' is needed{' for ' + purpose if purpose else ''} but cannot be imported ({exc})",
            hint=f"install it with: pip install 'edgec[{extra}]' -c constraints.txt",
        ) from exc
