"""The settings a target profile feeds, merged with explicit precedence and printable:
CLI flag > config file > target profile > default. ``edgec targets show NAME`` prints the result,
each value with where it came from.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULTS: dict[str, Any] = {
    "variants": ["fp32"],
    "threads": 0,                  # 0: every core
    "layout": "nhwc",
    "parity_mode": "fail",
    "parity": {"fp32": {"atol": 1e-4}},
    "budgets": {},
    "build_bench": True,
    "bench_loop": {"warmup_s": 1.0, "min_runs": 50, "min_seconds": 5.0},
}


def _from_profile(t) -> dict:
    return {"variants": list(t.variants), "threads": t.runtime.threads, "layout": t.layout,
            "parity": t.parity, "budgets": t.budgets}


def _from_config(cfg: dict) -> dict:
    out: dict[str, Any] = {}
    if cfg.get("variants"):
        out["variants"] = list(cfg["variants"])
    if cfg.get("keep_layout"):
        out["layout"] = "nchw"
    if cfg.get("parity"):
        out["parity_mode"] = cfg["parity"]
    if "bench" in cfg and cfg["bench"] is not None:
        out["build_bench"] = bool(cfg["bench"])
    if cfg.get("threads"):
        out["threads"] = int(cfg["threads"])
    return out


def resolve(target, config: dict | None = None, cli: dict | None = None) -> dict:
    """``{"settings": {...}, "origin": {key: "cli" | "config" | "profile" | "default"}}``."""
    layers = [("default", DEFAULTS), ("profile", _from_profile(target)), ("config", _from_config(config or {})),
              ("cli", {k: v for k, v in (cli or {}).items() if v is not None})]
    settings: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, layer in layers:
        for key, value in layer.items():
            if name == "profile" and value in ({}, None) and key in settings:
                continue  # an empty section in the profile does not hide the default
            settings[key] = value
            origin[key] = name
    host = os.cpu_count() or 1
    want = settings["threads"] or host
    settings["threads_here"] = min(want, host)
    origin["threads_here"] = f"{origin['threads']}, capped at the {host} cores of this machine"
    settings["runtime"] = f"{target.runtime.name}/{target.runtime.delegate}"
    origin["runtime"] = "profile"
    return {"settings": settings, "origin": origin}
