"""The shared step cache on a real S3-compatible server (moto's server, a process on loopback started
here): atomic publication, conditional puts, two edgec matrix runners at once, the verify pass."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgec.pipeline.cache import RemoteCache, step_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server on loopback; yields the environment that points s3fs at it, with a bucket made."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    assert exe.exists(), "moto_server is missing: pip install 'moto[server]' -c constraints.txt (test extra)"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, log.read_text()
                time.sleep(0.2)
        import fsspec

        fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = env["FSSPEC_S3_ENDPOINT_URL"]
        fs, _ = fsspec.core.url_to_fs("s3://edgec-test")
        fs.mkdir("edgec-test")
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_publish_fetch_and_race_on_s3(s3, tmp_path):
    url = "s3://edgec-test/unit"
    key = step_key("s", "abc", {"a": 1}, {"t": "1"})
    produced = []
    barrier = threading.Barrier(3)
    results = []

    def runner(i: int) -> None:
        cache = RemoteCache(url, tmp_path / f"mirror{i}")  # three machines: three local mirrors
        barrier.wait(timeout=30)

        def produce(out: Path) -> dict:
            produced.append(i)
            time.sleep(0.5)
            out.mkdir()
            (out / "model.bin").write_bytes(b"payload-%d" % i)
            return {"who": i}

        results.append(cache.put(key, produce))

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(produced) == 1, produced            # the lease: one runner computed, the others waited
    assert len({r.meta["who"] for r in results}) == 1 and sum(r.reused for r in results) == 2
    fresh = RemoteCache(url, tmp_path / "mirror-new")
    e = fresh.get(key)
    assert e is not None and (e.output / "model.bin").read_bytes() == b"payload-%d" % produced[0]
    rep = fresh.verify()
    assert rep["entries"] == 1 and rep["corrupt"] == [] and rep["unreferenced_blobs"] == 0


def test_damaged_remote_entry_is_never_used_and_is_reported(s3, tmp_path):
    url = "s3://edgec-test/damage"
    key = step_key("s", "dmg", {}, {})
    RemoteCache(url, tmp_path / "a").put(key, lambda out: (out.write_text("good"), {})[1])
    fs = RemoteCache(url, tmp_path / "b").fs
    marker = json.loads(fs.cat_file(f"edgec-test/damage/entries/{key[:2]}/{key}.json"))
    fs.pipe_file(f"edgec-test/damage/blobs/{marker['blob']}", b"truncated")
    other = RemoteCache(url, tmp_path / "c")
    assert other.get(key) is None
    assert other.verify()["corrupt"] == [f"edgec-test/damage/entries/{key[:2]}/{key}.json"]


def test_two_matrix_runners_share_the_s3_cache(s3, models, tmp_path):
    """Two `edgec matrix` processes on the same S3 cache at once, each with its own local mirror (two
    machines): both succeed, and the verify pass finds no corrupt entry."""
    p = tmp_path / "edgec.yaml"
    p.write_text(f"models:\n  cnn:\n    path: {models / 'cnn.pt'}\n    synthetic_validation: true\n"
                 "    variants: [fp32]\ntargets: [rpi4, desktop-cpu]\n")
    url = "s3://edgec-test/matrix"
    procs = []
    for i in (1, 2):
        env = dict(os.environ, **s3, EDGEC_CACHE_MIRROR=str(tmp_path / f"mirror{i}"))
        procs.append(subprocess.Popen([sys.executable, "-m", "edgec.cli.main", "matrix", str(p), "-o",
                                       str(tmp_path / f"out{i}"), "--jobs", "2", "--cache-dir", url, "-q"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [pr.communicate(timeout=1500) for pr in procs]
    assert [pr.returncode for pr in procs] == [0, 0], [o[1][-3000:] for o in outs]
    recs = [json.loads((tmp_path / f"out{i}" / "matrix.json").read_text()) for i in (1, 2)]
    shas = [{c["cell"]: c["variants"]["fp32"]["sha256"] for c in r["cells"]} for r in recs]
    assert shas[0] == shas[1]
    computed = [k for r in recs for c in r["cells"] for k in c["computed_keys"]]
    assert len(computed) == len(set(computed))  # no step computed by both runners
    v = subprocess.run([sys.executable, "-m", "edgec.cli.main", "cache", "verify", "--cache-dir", url, "--json"],
                       env=dict(os.environ, **s3, EDGEC_CACHE_MIRROR=str(tmp_path / "mirror3")),
                       capture_output=True, text=True, timeout=600)
    assert v.returncode == 0, v.stderr
    rep = json.loads(v.stdout)
    assert rep["entries"] >= 4 and rep["corrupt"] == []


def test_any_fsspec_store_and_local_urls(tmp_path):
    """A store without S3's conditional put (fsspec's memory://) publishes the same way; file:// and a
    plain directory open the local cache."""
    from edgec.pipeline.cache import Cache, open_cache

    key = step_key("s", "mem", {}, {})
    a, b = (RemoteCache("memory://edgec-any/x", tmp_path / n) for n in ("a", "b"))
    e = a.put(key, lambda out: (out.write_text("one"), {})[1])
    assert not e.reused and b.get(key).output.read_text() == "one"
    assert b.put(key, lambda out: (out.write_text("two"), {})[1]).reused
    assert a.verify()["corrupt"] == []
    for where in (f"file://{tmp_path / 'loc'}", str(tmp_path / "loc")):
        c = open_cache(where)
        assert type(c) is Cache and c.root == tmp_path / "loc"


def test_an_entry_published_between_a_miss_and_the_lease_is_reused(tmp_path):
    """The race the two-runner matrix test once hit: runner B misses, runner A then computes, publishes and
    releases its lease, and only then does B take the (now free) lease. B must read again, not compute."""
    url = "memory://edgec-race/x"
    key = step_key("s", "race", {}, {})
    a, b = (RemoteCache(url, tmp_path / n) for n in ("a", "b"))
    take = b._take_lease

    def a_finishes_first(k: str) -> bool:
        a.put(k, lambda out: (out.write_text("from a"), {})[1])
        return take(k)

    b._take_lease = a_finishes_first
    computed = []
    e = b.put(key, lambda out: (computed.append(1), out.write_text("from b"), {})[2])
    assert computed == [] and e.reused and e.output.read_text() == "from a"
    assert not b.fs.exists(b._r("leases", key))   # B gave back the lease it took
    assert a.verify() == {"cache": url, "entries": 1, "corrupt": [], "unreferenced_blobs": 0}
