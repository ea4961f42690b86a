"""``edgec matrix init-ci``: a GitHub Actions workflow. N shard jobs each run ``edgec matrix --shard i/N``
against the shared cache; a final job merges the shards' outputs, gates against the baseline matrix
(when one is given) and uploads the report."""

from __future__ import annotations

import os
from pathlib import Path

from edgec.errors import OutputError, UsageError


def workflow(project: str, shards: int, cache: str, baseline: str | None = None) -> dict:
    if shards < 1:
        raise UsageError(f"--shards must be >= 1, got {shards}")
    setup = [{"uses": "actions/checkout@v4"},
             {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
             {"name": "Install edgec", "run": "bash scripts/setup.sh"}]
    env = {"AWS_ACCESS_KEY_ID": "${{ secrets.EDGEC_CACHE_KEY_ID }}",
           "AWS_SECRET_ACCESS_KEY": "${{ secrets.EDGEC_CACHE_SECRET }}"}
    shard = {"runs-on": "ubuntu-latest", "strategy": {"fail-fast": False, "matrix": {"shard": list(range(1, shards + 1))}},
             "env": env,
             "steps": setup + [
                 {"name": "Build this shard of the matrix",
                  "run": f".venv/bin/edgec matrix {project} -o out-${{{{ matrix.shard }}}} "
                         f"--shard ${{{{ matrix.shard }}}}/{shards} --cache-dir {cache}"},
                 {"if": "always()", "uses": "actions/upload-artifact@v4",
                  "with": {"name": "edgec-shard-${{ matrix.shard }}", "path": "out-${{ matrix.shard }}"}}]}
    gate = f" --baseline {baseline}" if baseline else ""
    merge = {"runs-on": "ubuntu-latest", "needs": "shard", "if": "always()", "env": env,
             "steps": setup + [
                 {"uses": "actions/download-artifact@v4", "with": {"pattern": "edgec-shard-*", "path": "shards"}},
                 {"name": "Merge, gate and summarize",
                  "run": f".venv/bin/edgec matrix merge shards/* -o matrix-out{gate}\n"
                         "cat matrix-out/matrix.md >> \"$GITHUB_STEP_SUMMARY\""},
                 {"if": "always()", "uses": "actions/upload-artifact@v4",
                  "with": {"name": "edgec-matrix-report", "path": "matrix-out"}}]}
    return {"name": "edgec matrix", "on": {"push": None, "pull_request": None, "workflow_dispatch": None},
            "jobs": {"shard": shard, "merge": merge}}


def write_workflow(dest: str | Path, project: str, shards: int, cache: str, baseline: str | None = None) -> Path:
    import yaml

    dest = Path(dest)
    text = yaml.safe_dump(workflow(project, shards, cache, baseline), sort_keys=False, width=120)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_text("# Written by `edgec matrix init-ci`; see the README (edgec matrix).\n" + text)
        os.replace(tmp, dest)
    except OSError as exc:
        raise OutputError(f"cannot write the workflow ({exc.strerror})", where=str(dest)) from exc
    return dest
