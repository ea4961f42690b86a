"""Reports: the build manifest rendered as JSON (itself), Markdown and a single-file HTML page.

``write_reports(OUT)`` writes ``OUT/report.md`` and ``OUT/report.html`` from ``OUT/manifest.json``;
``write_comparison(A, B, DEST)`` puts two builds side by side.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgec.report.compare import render_comparison_html, render_comparison_markdown
from edgec.report.html import render_html
from edgec.report.markdown import render_markdown
from edgec.report.model import Report, load_report, report_from_manifest


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports_for(manifest: dict, dest: Path) -> list[Path]:
    rep = report_from_manifest(manifest, str(dest / "manifest.json"))
    md, html = dest / "report.md", dest / "report.html"
    _atomic_write(md, render_markdown(rep))
    _atomic_write(html, render_html(rep))
    return [md, html]


def write_reports(out: str | Path) -> list[Path]:
    rep = load_report(out)
    return write_reports_for(rep.manifest, Path(out))


def write_comparison(a: str | Path, b: str | Path, dest: str | Path) -> list[Path]:
    ra, rb = load_report(a), load_report(b)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    md, html = dest / "compare.md", dest / "compare.html"
    _atomic_write(md, render_comparison_markdown(ra, rb, str(a), str(b)))
    _atomic_write(html, render_comparison_html(ra, rb, str(a), str(b)))
    return [md, html]


__all__ = ["Report", "load_report", "report_from_manifest", "render_markdown", "render_html", "write_reports",
           "write_reports_for", "write_comparison"]
