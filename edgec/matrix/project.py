"""The project file ``edgec.yaml``: models x targets, validated with the published JSON Schema
(``edgec/matrix/edgec.schema.json``) before any work starts. Errors name file:line and the field.

Precedence for one cell ``model@target``: ``overrides["model@target"]`` > ``targets[target]`` >
the model's own settings > ``defaults`` > the target profile. Paths are relative to the project file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgec.errors import UsageError

SCHEMA_PATH = Path(__file__).with_name("edgec.schema.json")
PATH_FIELDS = ("path", "validation_data", "calibration_data", "labels")
# project-file key -> BuildConfig field
RENAMES = {"path": "model", "input_shape": "input_shapes", "input_dtype": "input_dtypes",
           "input_value": "input_values", "budgets": "parity_budgets"}


class ProjectError(UsageError):
    """A project file (edgec.yaml) that does not validate: names file:line and the field."""


@dataclass(frozen=True)
class Cell:
    model: str
    target: str
    config: dict           # BuildConfig fields (without out / cache_dir)

    @property
    def name(self) -> str:
        return f"{self.model}@{self.target}"


@dataclass(frozen=True)
class Project:
    path: Path
    models: tuple[str, ...]
    targets: tuple[str, ...]
    cells: tuple[Cell, ...]
    cache_dir: str | None = None


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _compose(text: str, where: str):
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else where
        raise ProjectError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=at) from None


def _line_of(node, path) -> int | None:
    """The 1-based line of the YAML node at ``path`` (keys and indices), as deep as it exists."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next(((k, v) for k, v in node.value if k.value == part), None)
            if nxt is None:
                break
            line, node = nxt[0].start_mark.line + 1, nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _field(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _schema_error(err) -> str:
    """A short message from a jsonschema error (the most specific one of a oneOf)."""
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return f"unknown field {', '.join(map(repr, extra))}" + (f" (allowed: {allowed})" if allowed else "")
    if err.validator == "oneOf" and err.context:
        if any(e.validator == "required" for e in err.context) and isinstance(err.instance, dict) and \
                {"path", "factory"} & set(err.instance) != {"path"} and {"path", "factory"} & set(err.instance) != {"factory"}:
            return "a model needs exactly one of 'path' or 'factory'"
        best = min(err.context, key=lambda e: len(list(e.path)))
        return best.message
    return err.message


def load_project(path: str | Path) -> Project:
    p = Path(path)
    if not p.is_file():
        raise ProjectError("project file not found", where=str(p), hint="write an edgec.yaml (see the README: "
                           "'Many models x targets') or pass its path")
    where = str(p)
    root, data = _compose(p.read_text(encoding="utf-8"), where)
    if not isinstance(data, dict):
        raise ProjectError("a project file is a mapping with 'models' and 'targets'", where=f"{where}:1")
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.path)),))
    if errors:
        err = errors[0]
        path_ = list(err.path)
        if err.validator == "additionalProperties":  # point at the unknown key itself
            path_.append(sorted(set(err.instance) - set(err.schema.get("properties", {})))[0])
        more = f"; and {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
        raise ProjectError(f"field {_field(path_)}: {_schema_error(err)}{more}",
                           where=f"{where}:{_line_of(root, path_)}",
                           hint="the schema: edgec/matrix/edgec.schema.json; see the README, edgec matrix")
    return _resolve(p, root, data)


def _resolve(p: Path, root, data: dict) -> Project:
    from edgec.errors import TargetError
    from edgec.targets import load_target

    where, base = str(p), p.resolve().parent
    targets = data["targets"]
    target_over = {t: {} for t in targets} if isinstance(targets, list) else {t: (v or {}) for t, v in targets.items()}
    for i, t in enumerate(target_over):
        try:
            load_target(t if not t.endswith((".yaml", ".yml")) else str(base / t))
        except TargetError as exc:
            key = ["targets", i] if isinstance(targets, list) else ["targets", t]
            raise ProjectError(f"field {_field(key)}: unknown target '{t}'",
                               where=f"{where}:{_line_of(root, key)}", hint="see `edgec targets`") from None
    for name, m in data["models"].items():
        for f in PATH_FIELDS:
            if f in m and not (base / m[f]).exists() and ":" not in m[f]:
                key = ["models", name, f]
                raise ProjectError(f"field {_field(key)}: file not found: {base / m[f]}",
                                   where=f"{where}:{_line_of(root, key)}", hint="paths are relative to the project file")
    overrides = data.get("overrides") or {}
    for cell in overrides:
        model, _, target = cell.partition("@")
        if model not in data["models"] or target not in target_over:
            key = ["overrides", cell]
            raise ProjectError(f"field {_field(key)}: '{cell}' is not a model@target of this project",
                               where=f"{where}:{_line_of(root, key)}",
                               hint=f"models: {', '.join(data['models'])}; targets: {', '.join(target_over)}")
    cells = []
    for name, m in data["models"].items():
        for t, tover in target_over.items():
            cfg = _settings(data.get("defaults") or {})
            cfg.update(_settings(m, base))
            for layer in (tover, overrides.get(f"{name}@{t}") or {}):
                over = _settings(layer)
                if "parity_budgets" in over:  # budgets merge per variant and key
                    merged = {k: dict(v) for k, v in (cfg.get("parity_budgets") or {}).items()}
                    for v, b in over.pop("parity_budgets").items():
                        merged.setdefault(v, {}).update(b)
                    cfg["parity_budgets"] = merged
                cfg.update(over)
            cfg["target"] = t if not t.endswith((".yaml", ".yml")) else str(base / t)
            labels = cfg.pop("labels", None)
            if labels:
                cfg["bundle"] = {"labels": labels}
            cells.append(Cell(name, t, cfg))
    return Project(p, tuple(data["models"]), tuple(target_over), tuple(cells), data.get("cache_dir"))


def _settings(d: dict, base: Path | None = None) -> dict:
    out = {}
    for k, v in d.items():
        if base is not None and k in PATH_FIELDS and ":" not in str(v):
            v = str((base / v).resolve())
        out[RENAMES.get(k, k)] = v
    return out


def build_config(cell: Cell, out: Path, cache_dir: str | None):
    """The cell's BuildConfig (validated the same way ``edgec build`` validates its flags)."""
    from edgec.pipeline.config import BuildConfig

    return BuildConfig.from_dict({**cell.config, "out": str(out), "cache_dir": cache_dir},
                                 where=f"{cell.name}")
