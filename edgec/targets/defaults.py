"""The variants a build makes when ``--variants`` is not given, and the ones it leaves out, with why.

A profile's ``variants`` list is the target's own choice, made per device in ``targets/*.yaml``
(each profile's comments say why; so does the README's Targets section). From it a build drops:

- a calibrated variant (int8, int16x8) when the build has no calibration data: a full-integer model
  calibrated on nothing is not one to ship, and random calibration is only ever explicit
  (``--synthetic-calibration``);
- a variant the profile's declared on-device runtime cannot load, as far as that is known before
  converting (``CONVERTER_OPS``: the op versions this converter is known to write for the variant).

fp32 is always built: it is the reference every other variant is compared with in the ledger.
Explicit ``--variants`` are built as given (fp32 added first); a calibrated one without data is then
refused or warned about where the data is resolved (``edgec.data.calibration``), as before.

After the build, ``unloadable`` checks the built files themselves against the runtime (op codes and
versions, and the runtime's own load where a record has one), for what the static choice cannot know.
"""

from __future__ import annotations

from pathlib import Path

from edgec.errors import UsageError

REFERENCE = "fp32"
CALIBRATED = ("int8", "int16x8")
# (op, version) the pinned converter (TensorFlow 2.19's TFLiteConverter) writes for a variant and
# that older TFLite runtimes lack: its dynamic-range models carry FULLY_CONNECTED v12 (TFLite 2.17),
# which tflite-runtime 2.14 and LiteRT 2.16 refuse ("Didn't find op for builtin opcode
# 'FULLY_CONNECTED' version '12'", measured: see the README's Benchmarking section).
CONVERTER_OPS: dict[str, tuple[tuple[str, int], ...]] = {"dynamic_int8": (("FULLY_CONNECTED", 12),)}
NO_CALIBRATION = ("no calibration data: pass --calibration-data PATH of real inputs to build it (the same "
                  "path as --validation-data is split between the two)")


def choose_variants(target, requested: tuple[str, ...] | None,
                    has_calibration: bool) -> tuple[tuple[str, ...], list[dict]]:
    """(the variants to build, fp32 first; the left-out ones as ``{"variant", "reason"}`` rows)."""
    from edgec.targets import VARIANTS

    if requested:
        for v in requested:
            if v not in VARIANTS:
                raise UsageError(f"unknown variant '{v}'", hint=f"known: {', '.join(VARIANTS)}")
        return _with_reference(tuple(requested)), []
    chosen, skipped = [], []
    for v in target.variants:
        why = _left_out(target, v, has_calibration)
        if why:
            skipped.append({"variant": v, "reason": why})
        else:
            chosen.append(v)
    return _with_reference(tuple(chosen)), skipped


def _with_reference(variants: tuple[str, ...]) -> tuple[str, ...]:
    return variants if REFERENCE in variants else (REFERENCE, *variants)


def _left_out(target, variant: str, has_calibration: bool) -> str | None:
    if variant == REFERENCE:
        return None
    if variant in CALIBRATED and not has_calibration:
        return NO_CALIBRATION
    return _runtime_refuses(target, variant)


def _runtime_refuses(target, variant: str) -> str | None:
    """Why the profile's on-device runtime cannot load what the converter writes for ``variant``."""
    from edgec.targets.compat import _vkey, needed_version

    rt = target.runtime
    if rt.name != "tflite" or not rt.on_device_version:
        return None  # no TF-numbered runtime version to check against (the load check runs after the build)
    for op, version in CONVERTER_OPS.get(variant, ()):
        need = needed_version(op, version)
        if need and _vkey(need) > _vkey(rt.on_device_version):
            return (f"{rt.on_device} cannot load it: the converter writes {op} v{version}, which needs "
                    f"TFLite {need} (pass --variants to build it anyway)")
    return None


def unloadable(target, built: dict[str, Path], records: dict[str, dict] | None = None) -> list[dict]:
    """The built variants (not fp32) the target's on-device runtime cannot load, as
    ``{"variant", "reason"}`` rows. ``records``: the build's ``bench`` section, whose ``compat``
    records (op versions, and the runtime's own load where it is installed) are used where present;
    otherwise the op codes and versions of the file are checked (no load)."""
    from edgec.targets.compat import check_artifact

    out = []
    for variant, path in built.items():
        if variant == REFERENCE:
            continue
        rec = ((records or {}).get(variant) or {}).get("compat") or check_artifact(Path(path), target, load=False)
        if rec.get("ok", True):
            continue
        too_new = ", ".join(f"{t['op']} v{t['version']} needs {t['needs']}" for t in rec.get("too_new") or [])
        load = (rec.get("load") or {}).get("error")
        out.append({"variant": variant, "reason": f"{rec.get('on_device', target.runtime.on_device)} cannot load "
                                                  f"it: {too_new or load or 'the load failed'}"})
    return out
