"""Read the TFLite metadata of any .tflite back into ``ModelMeta`` (what ``edgec inspect`` shows).

Works on models edgec did not write: parts of the schema edgec does not model (tokenizer process
units, tensor groups, custom metadata, bounding-box or audio content) are listed by name in
``ModelMeta.unmodelled`` rather than dropped silently.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from edgec.errors import InputError
from edgec.formats.metadata._schema import fb
from edgec.formats.metadata.spec import (COLOR_SPACES, FILE_TYPES, SCORE_TRANSFORMS, AssociatedFile, ModelMeta, Normalization,
                   ScoreCalibration, TensorMeta)
from edgec.formats.metadata.writer import METADATA_IDENTIFIER, METADATA_NAME

_CONTENT_NAMES = {v: k for k, v in vars(fb.ContentProperties).items() if not k.startswith("_")}
_UNIT_NAMES = {v: k for k, v in vars(fb.ProcessUnitOptions).items() if not k.startswith("_")}


def metadata_bytes(data: bytes, where: str = "model") -> bytes | None:
    """The raw ``ModelMetadata`` flatbuffer of a model, or None when it has none."""
    from edgec.formats.tflite_graph import schema

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputError("not a TFLite flatbuffer (no TFL3 identifier)", where=where)
    model = schema().Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if (entry.Name() or b"").decode() == METADATA_NAME:
            buf = model.Buffers(entry.Buffer())
            if buf is not None and buf.DataLength():
                return buf.DataAsNumpy().tobytes()
    return None


def associated_files(data: bytes) -> dict[str, bytes]:
    """The files zipped after the flatbuffer (name -> bytes); empty when there are none."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except zipfile.BadZipFile:
        return {}


def read_metadata(path_or_bytes) -> tuple[ModelMeta | None, dict[str, bytes]]:
    """(metadata, associated files) of a .tflite file or its bytes."""
    where = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else "model"
    data = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, (str, Path)) else bytes(path_or_bytes)
    raw = metadata_bytes(data, where)
    files = associated_files(data)
    if raw is None:
        return None, files
    if raw[4:8] != METADATA_IDENTIFIER:
        raise InputError("the TFLITE_METADATA buffer is not TFLite metadata (no M001 identifier)", where=where)
    try:
        return parse(raw), files
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt TFLite metadata ({type(exc).__name__}: {exc})", where=where) from exc


def _s(b) -> str:
    return b.decode() if b else ""


def parse(raw: bytes) -> ModelMeta:
    m = fb.ModelMetadata.GetRootAs(raw, 0)
    unmodelled: list[str] = []
    sg = m.SubgraphMetadata(0) if m.SubgraphMetadataLength() else None
    if m.SubgraphMetadataLength() > 1:
        unmodelled.append(f"subgraph_metadata[1:] ({m.SubgraphMetadataLength() - 1} more)")
    inputs = outputs = ()
    if sg is not None:
        inputs = tuple(_tensor(sg.InputTensorMetadata(i), f"inputs[{i}]", unmodelled)
                       for i in range(sg.InputTensorMetadataLength()))
        outputs = tuple(_tensor(sg.OutputTensorMetadata(i), f"outputs[{i}]", unmodelled)
                        for i in range(sg.OutputTensorMetadataLength()))
        for what, n in (("input_process_units", sg.InputProcessUnitsLength()),
                        ("output_process_units", sg.OutputProcessUnitsLength()),
                        ("input_tensor_groups", sg.InputTensorGroupsLength()),
                        ("output_tensor_groups", sg.OutputTensorGroupsLength()),
                        ("custom_metadata", sg.CustomMetadataLength()),
                        ("subgraph associated_files", sg.AssociatedFilesLength())):
            if n:
                unmodelled.append(f"{what} ({n})")
    return ModelMeta(
        name=_s(m.Name()), description=_s(m.Description()), version=_s(m.Version()), author=_s(m.Author()),
        license=_s(m.License()), subgraph_name=_s(sg.Name()) if sg else "",
        subgraph_description=_s(sg.Description()) if sg else "", inputs=inputs, outputs=outputs,
        files=tuple(_file(m.AssociatedFiles(i)) for i in range(m.AssociatedFilesLength())),
        min_parser_version=_s(m.MinParserVersion()), unmodelled=tuple(unmodelled))


def _file(f) -> AssociatedFile:
    return AssociatedFile(name=_s(f.Name()), type=FILE_TYPES[f.Type()] if f.Type() < len(FILE_TYPES) else
                          str(f.Type()), description=_s(f.Description()), locale=_s(f.Locale()))


def _tensor(t, where: str, unmodelled: list[str]) -> TensorMeta:
    content, color, size = "none", None, None
    c = t.Content()
    if c is not None:
        kind = c.ContentPropertiesType()
        if kind == fb.ContentProperties.ImageProperties:
            p = fb.ImageProperties()
            p.Init(c.ContentProperties().Bytes, c.ContentProperties().Pos)
            content, color = "image", COLOR_SPACES[p.ColorSpace()] if p.ColorSpace() < 3 else str(p.ColorSpace())
            ds = p.DefaultSize()
            size = (ds.Width(), ds.Height()) if ds is not None else None
        elif kind == fb.ContentProperties.FeatureProperties:
            content = "feature"
        elif kind != fb.ContentProperties.NONE:
            unmodelled.append(f"{where}.content {_CONTENT_NAMES.get(kind, kind)}")
        if c.Range() is not None:
            unmodelled.append(f"{where}.content.range")
    norm, calib = None, None
    for i in range(t.ProcessUnitsLength()):
        u = t.ProcessUnits(i)
        if u.OptionsType() == fb.ProcessUnitOptions.NormalizationOptions:
            o = fb.NormalizationOptions()
            o.Init(u.Options().Bytes, u.Options().Pos)
            norm = Normalization(tuple(float(o.Mean(j)) for j in range(o.MeanLength())),
                                 tuple(float(o.Std(j)) for j in range(o.StdLength())))
        elif u.OptionsType() == fb.ProcessUnitOptions.ScoreCalibrationOptions:
            o = fb.ScoreCalibrationOptions()
            o.Init(u.Options().Bytes, u.Options().Pos)
            calib = ScoreCalibration(SCORE_TRANSFORMS[o.ScoreTransformation()], float(o.DefaultScore()))
        else:
            unmodelled.append(f"{where}.process_units {_UNIT_NAMES.get(u.OptionsType(), u.OptionsType())}")
    stats = t.Stats()
    value_range = None
    if stats is not None and (stats.MinLength() or stats.MaxLength()):
        value_range = (tuple(float(stats.Min(j)) for j in range(stats.MinLength())),
                       tuple(float(stats.Max(j)) for j in range(stats.MaxLength())))
    return TensorMeta(
        name=_s(t.Name()), description=_s(t.Description()), content=content, color_space=color,
        image_size=size, normalization=norm, value_range=value_range,
        dimension_names=tuple(_s(t.DimensionNames(j)) for j in range(t.DimensionNamesLength())),
        files=tuple(_file(t.AssociatedFiles(j)) for j in range(t.AssociatedFilesLength())),
        score_calibration=calib)


def render_lines(meta: dict, files: dict[str, int]) -> list[str]:
    """Human-readable lines for ``edgec inspect`` from ``ModelMeta.to_dict()`` and file sizes."""
    head = ", ".join(f"{k} {meta[k]!r}" for k in ("version", "author", "license") if meta.get(k))
    lines = [f"  metadata: {meta['name']!r}{' (' + head + ')' if head else ''}, parser >= {meta['min_parser_version']}"]
    if meta.get("description"):
        lines.append(f"    description: {meta['description']}")
    if meta.get("subgraph_name") or meta.get("subgraph_description"):
        lines.append(f"    subgraph: {meta.get('subgraph_name')!r} {meta.get('subgraph_description') or ''}".rstrip())
    for kind in ("inputs", "outputs"):
        for t in meta[kind]:
            bits = [t["content"]]
            if t.get("color_space"):
                bits.append(t["color_space"] + (" %dx%d" % tuple(t["image_size"]) if t.get("image_size") else ""))
            if t.get("normalization"):
                bits.append(f"normalization mean {t['normalization']['mean']} std {t['normalization']['std']}")
            if t.get("value_range"):
                bits.append(f"range {t['value_range'][0]}..{t['value_range'][1]}")
            if t.get("score_calibration"):
                bits.append(f"score calibration {t['score_calibration']['transformation']}")
            bits += [f"{f['type']} file {f['name']}" for f in t.get("files", [])]
            lines.append(f"    {kind[:-1]:6} {t['name']}: {'; '.join(bits)}")
            if t.get("description"):
                lines.append(f"           {t['description']}")
    for f in meta.get("files", []):
        lines.append(f"    model file {f['name']} ({f['type']})")
    if files:
        lines.append("    embedded files: " + ", ".join(f"{n} ({b:,} bytes)" for n, b in sorted(files.items())))
    if meta.get("unmodelled"):
        lines.append(f"    not shown (edgec does not model them): {', '.join(meta['unmodelled'])}")
    return lines
