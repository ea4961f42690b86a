"""The real-device flags of ``edgec bench`` and ``edgec build`` (see edgec/bench/devices.py): flags ->
the device spec dict the configs carry. Light at import time."""

from __future__ import annotations


def add_device_arguments(p, build: bool = False) -> None:
    g = p.add_argument_group("real devices (see the README's 'Real devices')")
    g.add_argument("--device", metavar="URL", help="also measure on a real device: ssh://[USER@]HOST[:PORT] (a board "
                   "with python, numpy and a TFLite runtime) or adb://SERIAL (a phone, with benchmark_model)")
    g.add_argument("--device-python", metavar="PATH", help="(ssh) the board's interpreter (default python3)")
    g.add_argument("--device-key", metavar="FILE", help="(ssh) the private key to log in with (default: your "
                   "ssh config and agent)")
    g.add_argument("--device-timeout", type=float, metavar="S", help="time limit of the run on the device "
                   "(default: the loop's longest time + 120 s)")
    g.add_argument("--benchmark-binary", metavar="FILE", help="(adb) a benchmark_model binary to push (default: "
                   "the one on the device's PATH or in /data/local/tmp)")
    if build:
        g.add_argument("--parity-on-device", action="store_true", help="(ssh) also run the validation inputs on the "
                       "device: a ledger row 'tflite:VARIANT on DEVICE' per variant")
    else:
        g.add_argument("--device-pool", metavar="FILE", help="a devices.yaml: measure on every board of --target, "
                       "one job per board at a time")


def device_spec(args, build: bool = False) -> dict | None:
    """The spec dict for BenchConfig/BuildConfig ``device``; None without --device."""
    from edgec.errors import UsageError

    url = getattr(args, "device", None)
    extra = [f for f in ("device_python", "device_key", "device_timeout", "benchmark_binary") if getattr(args, f, None)]
    if build and getattr(args, "parity_on_device", False):
        extra.append("parity_on_device")
    if not url:
        if extra:
            raise UsageError(f"--{extra[0].replace('_', '-')} needs --device URL")
        return None
    spec = {"url": url, "python": args.device_python, "key": args.device_key, "timeout": args.device_timeout,
            "benchmark_binary": args.benchmark_binary}
    if build:
        spec["parity"] = bool(getattr(args, "parity_on_device", False))
    return {k: v for k, v in spec.items() if v not in (None, "")}
