"""Strict mode (tests/conftest.py, set by .ci/run): a test that would skip for a missing optional
dependency fails, with the skip's reason; without it, skips still skip. Each case runs pytest in a
subprocess on generated test files that use this conftest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

CASES = '''
import pytest


def test_runs():
    assert 1 + 1 == 2


def test_needs_a_missing_package():
    pytest.importorskip("edgec_no_such_package")


@pytest.mark.skipif(True, reason="sshd is not installed")
def test_needs_a_missing_binary():
    pass


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
'''

WHOLE_MODULE = '''
import pytest

pytest.importorskip("edgec_no_such_module_either")


def test_never_collected():
    pass
'''


def _run(tmp_path: Path, strict: bool) -> tuple[subprocess.CompletedProcess, dict]:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_cases.py").write_text(CASES)
    (tmp_path / "test_whole_module.py").write_text(WHOLE_MODULE)
    counts = tmp_path / "counts.json"
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEC_STRICT_TESTS", "EDGEC_TEST_COUNTS",
                                                            "PYTEST_ADDOPTS")}
    env["EDGEC_TEST_COUNTS"] = str(counts)
    if strict:
        env["EDGEC_STRICT_TESTS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    return proc, json.loads(counts.read_text())


def test_strict_mode_turns_every_skip_into_a_failure_naming_its_reason(tmp_path):
    proc, counts = _run(tmp_path, strict=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    # a skipif skips in setup, so it fails as an error of that test, as a failing fixture would
    assert counts == {"passed": 1, "failed": 1, "error": 2, "skipped": 0, "xfailed": 1, "xpassed": 0,
                      "strict_failures": 3, "strict": True}, out
    assert "could not import 'edgec_no_such_package'" in out
    assert "sshd is not installed" in out
    assert "could not import 'edgec_no_such_module_either'" in out  # a module-level importorskip
    assert "EDGEC_STRICT_TESTS=1: this test would have been skipped" in out
    assert "EDGEC_STRICT_TESTS=1: 0 skipped; 3 skip(s) turned into failures" in out
    assert "Interrupted" not in out  # the module that failed to collect did not stop the others


def test_without_strict_mode_skips_still_skip(tmp_path):
    proc, counts = _run(tmp_path, strict=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert counts == {"passed": 1, "failed": 0, "error": 0, "skipped": 3, "xfailed": 1, "xpassed": 0,
                      "strict_failures": 0, "strict": False}, out
    assert "3 skipped" in out
    assert "EDGEC_STRICT_TESTS=1" not in out


@pytest.mark.parametrize("value", ["", "0"])
def test_strict_mode_is_off_unless_set(value, monkeypatch):
    import conftest

    monkeypatch.setenv("EDGEC_STRICT_TESTS", value)
    assert not conftest._strict()
    monkeypatch.setenv("EDGEC_STRICT_TESTS", "1")
    assert conftest._strict()
