"""``edgec doctor``: each converter environment, its interpreter, key package versions, and whether
its key modules import (each checked in its own interpreter, side by side; nothing heavy is
imported into this process)."""

from __future__ import annotations

import json


def add_parser(sub, common, epilog: str) -> None:
    d = sub.add_parser("doctor", parents=[common], help="list the converter environments and check that each "
                       "imports (edgec's venv and litert-torch's)")
    d.add_argument("--json", action="store_true")


def cmd_doctor(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from edgec.convert import envs
    from edgec.errors import DependencyError

    with ThreadPoolExecutor(len(envs.ENVS)) as pool:
        results = list(pool.map(envs.check, envs.ENVS.values()))
    if args.json:
        print(json.dumps({"environments": results}, indent=2))
    else:
        print(render(results))
    broken = [r["name"] for r in results if not r["ok"]]
    if broken:
        raise DependencyError(f"converter environment(s) {', '.join(broken)} not usable "
                              f"({'; '.join(r['error'] for r in results if not r['ok'])})"[:600],
                              hint=envs.SETUP_HINT)
    return 0


def render(results: list[dict]) -> str:
    lines = []
    for r in results:
        state = "ok" if r["ok"] else "BROKEN"
        lines.append(f"{r['name']}: {state}  {r['purpose']}")
        lines.append(f"  interpreter  {r['python']}" + (f"  (Python {r['python_version']})"
                                                         if r.get("python_version") else ""))
        lines.append(f"  pins         {r['constraints']}")
        lines.append("  packages     " + ", ".join(f"{k} {v}" for k, v in r["packages"].items()))
        if r.get("imports"):
            lines.append("  imports      " + ", ".join(
                f"{m} {'ok' if v['ok'] else 'FAILED'} {v['seconds']:.1f}s" for m, v in r["imports"].items()))
        if r.get("error"):
            lines.append(f"  error        {r['error']}")
    return "\n".join(lines)
