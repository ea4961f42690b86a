"""Target profiles: every shipped profile validates; a wrong field is named."""

from __future__ import annotations

import pytest

from edgec.errors import TargetError
from edgec.targets import builtin_names, load_target


@pytest.mark.parametrize("name", builtin_names())
def test_every_profile_validates(name):
    t = load_target(name)
    assert t.description and t.runtime.name and t.variants
    assert "fp32" in t.parity


def test_alias():
    assert load_target("rpi").name == "rpi4"


BAD = [
    ("runtime:\n  name: tflite\n  delegate: warp\n  threads: 4\n  on_device: x\n", "runtime.delegate"),
    ("variants: [fp32, fp8]\n", "fp8"),
    ("colour: blue\n", "colour"),
    ("device:\n  name: x\n  cpu: y\n  isa: z\n  fp16_arithmetic: maybe\n  cores: 4\n", "device.fp16_arithmetic"),
    ("parity:\n  fp32: {atol: lots}\n", "parity.fp32.atol"),
]


@pytest.mark.parametrize("patch,field", BAD, ids=[b[1] for b in BAD])
def test_bad_profile_names_the_field(tmp_path, patch, field):
    import yaml

    base = yaml.safe_load(open(load_target("rpi4").source if False else __import__("edgec").targets._profiles_dir()
                               .joinpath("rpi4.yaml")))
    base.update(yaml.safe_load(patch))
    p = tmp_path / "board.yaml"
    p.write_text(yaml.safe_dump(base))
    with pytest.raises(TargetError, match=field.replace(".", r"\.")) as e:
        load_target(str(p))
    assert str(p) in str(e.value)


def test_user_profile_file(tmp_path):
    import shutil

    from edgec.targets import _profiles_dir

    p = tmp_path / "my-board.yaml"
    shutil.copyfile(str(_profiles_dir().joinpath("rpi5.yaml")), p)
    assert load_target(str(p)).name == "rpi5"
    with pytest.raises(TargetError, match="unknown target"):
        load_target("no-such-board")
