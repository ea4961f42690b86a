"""Connecting to a device from its spec (``--device URL``, a pool entry): the one place that knows
every kind of device (``edgec.bench.devices`` holds what they share)."""

from __future__ import annotations

from edgec.bench.devices import Device, check_spec


def make_device(spec: dict) -> Device:
    """The Device for a spec: ``ssh://`` -> ``remote.SSHDevice``, ``adb://`` -> ``adb.AdbDevice``."""
    check_spec(spec)
    timeout = float(spec["timeout"]) if spec.get("timeout") else None
    if spec["url"].startswith("ssh://"):
        from edgec.bench.remote import SSHDevice

        return SSHDevice(spec["url"], spec.get("python") or "python3", spec.get("key"), timeout=timeout)
    from edgec.bench.adb import AdbDevice

    return AdbDevice(spec["url"], spec.get("benchmark_binary"), timeout=timeout)
