"""``edgec matrix``: a project file of models x targets built as one planned run (see the README)."""

from __future__ import annotations

from pathlib import Path

from edgec.matrix.project import Cell, Project, ProjectError, load_project


def matrix(project_file: str | Path, opts) -> dict:
    """Build every selected cell; write ``OUT/matrix.{json,md,html}``; return the record."""
    from edgec.matrix.plan import select_only, shard_cells
    from edgec.matrix.report import gate, matrix_record, write_matrix
    from edgec.matrix.run import run_matrix

    project = load_project(project_file)
    cells = select_only(shard_cells(list(project.cells), opts.shard), opts.only)
    run = run_matrix(project, cells, opts)
    record = matrix_record(project, run, opts)
    record["gate"] = gate(record, opts.baseline, opts.fail_on)
    write_matrix(record, Path(opts.out))
    return record


__all__ = ["Cell", "Project", "ProjectError", "load_project", "matrix"]
