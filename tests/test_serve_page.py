"""The page of ``edgec serve`` in headless Chromium (Debian's package), driven over the DevTools
protocol: pick a file in the upload field, click, read what the page shows, collect console errors,
take a screenshot. The server is a real ``edgec serve`` process."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from browser import FLAGS, chromium
import served
from served import serving


class Chromium:
    """One headless Chromium with one page, spoken to over the DevTools protocol (websocket-client)."""

    def __init__(self, size=(1280, 1000)):
        import websocket

        exe = chromium()
        assert exe, "chromium is not installed (scripts/setup.sh --test installs Debian's chromium)"
        self.profile = tempfile.mkdtemp(prefix="edgec-cdp-")
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                      "--remote-allow-origins=*", f"--window-size={size[0]},{size[1]}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port, t0 = None, time.monotonic()
        while port is None:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
            assert line or self.proc.poll() is None, "chromium exited before it listened"
            assert time.monotonic() - t0 < 60, "chromium did not open its DevTools port"
        page = next(t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                    if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.next_id, self.events = 0, []
        for domain in ("Page", "Runtime", "Log", "DOM"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, (method, msg["error"])
                return msg["result"]
            self.events.append(msg)

    def eval(self, expr: str):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in res, res["exceptionDetails"]
        return res["result"].get("value")

    def wait_for(self, expr: str, timeout: float = 120):
        t0 = time.monotonic()  # a page still loading may have no body yet: that is "not yet"
        while not self.eval(f"(() => {{ try {{ return {expr}; }} catch (e) {{ return false; }} }})()"):
            assert time.monotonic() - t0 < timeout, f"timed out waiting for {expr}"
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre."""
        box = self.eval(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                        " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def upload(self, selector: str, path: Path) -> None:
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", files=[str(path)], nodeId=node)

    def console_errors(self) -> list[str]:
        self.eval("1")  # drain pending events
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("exception", {}).get("description", str(p)))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
        return out

    def screenshot(self, path: Path) -> None:
        h = self.eval("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(h), deviceScaleFactor=1, mobile=False)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait(30)
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture()
def browser():
    b = Chromium()
    yield b
    b.close()


CARDS = "JSON.stringify([...document.querySelectorAll('#results .card')].map(c => ({version: c.dataset.version, " \
        "top: [...c.querySelectorAll('table.top tr')].map(r => r.cells[0].textContent), " \
        "latency: c.querySelector('.latency').textContent, agree: c.querySelector('.agree').textContent})))"


def _classify_on_page(browser, url: str, photo: Path, versions: list[str]) -> list[dict]:
    browser.call("Page.navigate", url=url + "/")
    browser.wait_for("document.body.dataset.ready === '1'")
    assert browser.eval("!document.getElementById('classify').hidden")
    browser.upload("#file", photo)
    browser.wait_for("!document.getElementById('run').disabled")
    browser.click("#run")
    browser.wait_for(f"document.querySelectorAll('#results .card').length === {len(versions)}")
    return json.loads(browser.eval(CARDS))


def _photo(tmp_path: Path, stem: str) -> Path:
    from edgec.data.examples import photo_paths

    src = next(p for p in photo_paths() if p.stem == stem)
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes())
    return dst


def test_page_classifies_an_upload_with_every_variant(tiny_build, browser, tmp_path):
    with serving(tiny_build) as s:
        cards = _classify_on_page(browser, s.url, _photo(tmp_path, "coffee"), ["fp32", "int8"])
        assert [c["version"] for c in cards] == ["fp32", "int8"]
        for c in cards:
            assert len(c["top"]) == 5 and all(t.startswith("class_") for t in c["top"])
            assert re.search(r"latency [\d.]+ ms in the interpreter", c["latency"])
        assert cards[0]["agree"] == "reference" and "as fp32" in cards[1]["agree"]
        # the example picker works too
        browser.eval("(() => { const s = document.getElementById('example'); s.value = 'chelsea';"
                     " s.dispatchEvent(new Event('change')); })()")
        browser.click("#run")
        browser.wait_for("document.getElementById('status').textContent.includes(\"example 'chelsea'\")")
        assert browser.console_errors() == []


def test_page_shows_io_and_runs_a_model_that_is_not_an_image_classifier(tiny_build, browser):
    with serving(tiny_build / "model_fp32.tflite") as s:
        browser.call("Page.navigate", url=s.url + "/")
        browser.wait_for("document.body.dataset.ready === '1'")
        assert browser.eval("document.getElementById('classify').hidden && !document.getElementById('random').hidden")
        io = browser.eval("document.getElementById('io').textContent")
        assert "x" in io and "FP32" in io and "[1,32,32,3]" in io and "[1,10]" in io
        browser.click("#run-random")
        browser.wait_for("document.querySelectorAll('#random-results .card').length === 1")
        text = browser.eval("document.getElementById('random-results').textContent")
        assert "output FP32 [1,10]" in text and "round trip" in text
        assert browser.console_errors() == []


@pytest.fixture(scope="session")
def tiny_build(models, cache_dir) -> Path:
    return served.tiny_build(models, cache_dir)


@pytest.fixture(scope="session")
def effnet_out(cache_dir) -> Path:
    return served.effnet_build(cache_dir)


@pytest.mark.slow
def test_page_on_efficientnet_names_the_cat_in_every_variant(effnet_out, browser, tmp_path):
    shot = Path(tmp_path) / "serve_page.png"
    with serving(effnet_out) as s:
        cards = _classify_on_page(browser, s.url, _photo(tmp_path, "chelsea"), ["fp32", "fp16", "dynamic_int8"])
        browser.screenshot(shot)
        errors = browser.console_errors()
    assert [c["version"] for c in cards] == ["fp32", "fp16", "dynamic_int8"]
    for c in cards:
        assert len(c["top"]) == 5 and c["top"][0] == "Egyptian cat", c
        assert re.search(r"latency [\d.]+ ms", c["latency"])
    assert all("same top-1 as fp32" in c["agree"] for c in cards[1:])
    assert errors == []
    assert shot.stat().st_size > 20_000
    print(f"\nscreenshot: {shot}")
