"""Formats are the nodes of the conversion graph; an Artifact is one file or directory of a format.

Format detection looks at the bytes, not only at the extension, so a renamed or truncated file
is caught here with a message naming the file, before any heavy framework is imported.
"""

from __future__ import annotations

import enum
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from edgec.errors import InputError


class Format(str, enum.Enum):
    TORCHSCRIPT = "torchscript"          # .pt / .pth written by torch.jit.save
    EXPORTED_PROGRAM = "exported_program"  # .pt2 written by torch.export.save
    TORCH_MODULE = "torch_module"        # an eager nn.Module (from --factory or a trusted pickle)
    ONNX = "onnx"
    SAVED_MODEL = "saved_model"          # TF SavedModel directory
    KERAS = "keras"                      # .keras (Keras 3 zip) or .h5 (HDF5)
    TFLITE = "tflite"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


TORCH_FORMATS = (Format.TORCHSCRIPT, Format.EXPORTED_PROGRAM, Format.TORCH_MODULE)

EXTENSIONS = {
    ".pt": Format.TORCHSCRIPT, ".pth": Format.TORCHSCRIPT, ".ts": Format.TORCHSCRIPT,
    ".pt2": Format.EXPORTED_PROGRAM,
    ".onnx": Format.ONNX,
    ".keras": Format.KERAS, ".h5": Format.KERAS, ".hdf5": Format.KERAS,
    ".tflite": Format.TFLITE,
}

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``shape`` uses None for a dynamic dim; ``layout`` e.g. NCHW/NHWC."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    layout: str | None = None

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "layout": self.layout}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d["dtype"], d.get("layout"))


@dataclass
class Artifact:
    path: Path
    format: Format
    variant: str | None = None
    meta: dict = field(default_factory=dict)



def size_of(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory (relative paths and contents, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
            h.update(_file_digest(p).encode())
        return h.hexdigest()
    return _file_digest(path)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_format(path: Path) -> Format:
    """Name the format of ``path`` from its bytes; refuse missing, empty and mislabelled files."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", where=str(path), hint="check the path")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return Format.SAVED_MODEL
        raise InputError("directory is not a TF SavedModel (no saved_model.pb inside)", where=str(path),
                         hint="pass a model file, or the SavedModel directory itself")
    size = path.stat().st_size
    if size == 0:
        raise InputError("file is empty", where=str(path), hint="re-export the model")
    with open(path, "rb") as f:
        head = f.read(16)
    ext = path.suffix.lower()
    sniffed = _sniff(path, head)
    if sniffed is None:
        expected = EXTENSIONS.get(ext)
        if expected is None:
            raise InputError(f"unrecognised model file (extension '{ext or '(none)'}')", where=str(path),
                             hint="edgec reads .pt/.pt2 (PyTorch), .onnx, .keras/.h5, .tflite and "
                                  "SavedModel directories")
        if expected is Format.ONNX:
            return Format.ONNX  # protobuf has no magic bytes; the loader checks it fully
        raise InputError(f"not a valid {expected.value} file (content does not match; "
                         "truncated or corrupt?)", where=str(path), hint="re-export or re-download the model")
    expected = EXTENSIONS.get(ext)
    if expected is not None and not _compatible(expected, sniffed):
        raise InputError(f"extension '{ext}' says {expected.value} but the content is {sniffed.value}",
                         where=str(path), hint=f"rename the file to match its content")
    return sniffed


def _compatible(by_ext: Format, by_bytes: Format) -> bool:
    if by_ext == by_bytes:
        return True
    torchish = {Format.TORCHSCRIPT, Format.EXPORTED_PROGRAM, Format.TORCH_MODULE}
    return by_ext in torchish and by_bytes in torchish


def _sniff(path: Path, head: bytes) -> Format | None:
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return Format.TFLITE
    if head.startswith(HDF5_MAGIC):
        return Format.KERAS
    if head.startswith(b"PK"):
        return _sniff_zip(path)
    return None


def _sniff_zip(path: Path) -> Format | None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    base = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "config.json" in names and any(n.endswith(".weights.h5") or n == "model.weights.h5" for n in names):
        return Format.KERAS
    if any(n.startswith("models/") for n in base) or any(n.endswith("serialized_exported_program.json")
                                                        for n in names) or "archive_format" in base:
        return Format.EXPORTED_PROGRAM
    if "constants.pkl" in base or any(n.startswith("code/") for n in base):
        return Format.TORCHSCRIPT
    if "data.pkl" in base:
        return Format.TORCH_MODULE  # a torch.save pickle: a whole module or a state dict
    return None


__all__ = ["Format", "TensorSpec", "Artifact", "detect_format", "digest", "size_of"]
