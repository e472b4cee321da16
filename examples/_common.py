"""What every example shares: finding npespcn and the data, the command line, and small image helpers.

Each example is a script ``NN_name.py`` with ``main(argv=None, out_dir=None, fast=False) -> dict``: it
prints what it shows, asserts what it claims, writes its pictures as PNG into ``out_dir`` (default
``examples/out/``) and returns the numbers it printed, so the test suite can check them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

try:  # run from a source checkout without installing: make the package importable
    import npespcn  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the example is started
    sys.path.insert(0, str(ROOT))
    import npespcn  # noqa: F401

import numpy as np
from PIL import Image

from npespcn.cli.common import OneLineParser
from npespcn.image.color import rgb_to_y

DEFAULT_OUT = HERE / "out"


# ------------------------------------------------------------------------------------------ command line
def parse_args(argv, description: str):
    """The two options every example takes: ``--out DIR`` and ``--fast``. A bad command line is reported
    in one line (``npespcn.cli.common.OneLineParser``), like the project's other tools."""
    p = OneLineParser(description=description)
    p.add_argument("--out", metavar="DIR", default=None,
                   help=f"folder for the PNG pictures (default {DEFAULT_OUT})")
    p.add_argument("--fast", action="store_true", help="smaller sizes: runs in a few seconds (used by the tests)")
    return p.parse_args(argv)


def out_folder(out_dir) -> Path:
    """``out_dir`` (created if needed), or the default ``examples/out``."""
    path = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out must be a folder, got the file {path}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup(argv, out_dir, fast: bool, doc: str):
    """Resolve an example's ``main`` arguments: ``(output folder, fast)``, from ``argv`` when given."""
    if argv is not None:
        args = parse_args(argv, doc.splitlines()[0])
        out_dir, fast = args.out if args.out is not None else out_dir, args.fast or fast
    return out_folder(out_dir), fast


def run(main) -> None:
    """``if __name__ == "__main__": run(main)``: one-line errors on stderr and exit status 1, no traceback.

    AssertionError is not caught: a failed claim should show where it failed.
    """
    try:
        main(sys.argv[1:])
    except BrokenPipeError:           # output piped into e.g. `head`, which has quit: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


# ------------------------------------------------------------------------------------------ data
def datasets_dir() -> Path:
    """``$NPESPCN_DATASETS`` when set, else the built-in sets of the checkout, ``<repo>/data`` (T91, Set5,
    Set14: the files the project trains and evaluates on, see ``data/README.md``)."""
    return Path(os.environ.get("NPESPCN_DATASETS", ROOT / "data"))


def find_image(dataset: str, name: str):
    """Path of ``<datasets>/<dataset>/<name>`` or None when it is absent."""
    path = datasets_dir() / dataset / name
    return path if path.is_file() else None


def load_rgb8(path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def synthetic_chart(size: int = 96) -> np.ndarray:
    """A deterministic grey test chart as uint8 RGB (size, size, 3): a zone plate, bars, a disc, a ramp.

    Stands in for a photograph when the datasets are absent: it has edges at every angle and detail
    at every frequency, which is what super-resolution is about.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.5 + 0.5 * np.cos(110.0 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2))
    img[: size // 3, : size // 2] = np.floor(xx[: size // 3, : size // 2] * 16) % 2
    img[(xx - 0.75) ** 2 + (yy - 0.25) ** 2 < 0.03] = 0.9
    img[-size // 5:, :] = xx[-size // 5:, :]
    grey = np.round(16.0 + 219.0 * img).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def make_pair(rgb8: np.ndarray, r: int):
    """The project's degradation: crop to a multiple of ``r``, Pillow-bicubic shrink of the RGB image.

    Returns
    -------
    hr_y : ndarray (r*H, r*W) float64, luma of the cropped HR image on 16..235
    lr_y : ndarray (H, W) float64, luma of the shrunk image
    lr_rgb8 : ndarray (H, W, 3) uint8, the shrunk image (for the bicubic baseline)
    """
    H, W = rgb8.shape[0] // r, rgb8.shape[1] // r
    hr = np.ascontiguousarray(rgb8[:r * H, :r * W])
    lr = np.asarray(Image.fromarray(hr).resize((W, H), Image.BICUBIC))
    return rgb_to_y(hr), rgb_to_y(lr), lr


def bicubic_y(lr_rgb8: np.ndarray, r: int) -> np.ndarray:
    """The baseline: luma of the Pillow-bicubic ``r``-times enlargement of an RGB uint8 image."""
    h, w = lr_rgb8.shape[:2]
    return rgb_to_y(np.asarray(Image.fromarray(lr_rgb8).resize((w * r, h * r), Image.BICUBIC)))


class PatchSampler:
    """Random aligned training pairs cut from whole images.

    ``pairs`` is a list of ``(hr_y (rH, rW), lr_y (H, W))`` on the 0..255 scale (from :func:`make_pair`);
    :meth:`batch` returns ``x (n, 1, s, s)`` and ``y (n, 1, r s, r s)``, float32 on 0..1: the LR patch at
    ``(u, v)`` and the HR patch at ``(r u, r v)``, which covers exactly the same part of the scene.
    """

    def __init__(self, pairs, r: int, size: int, seed: int = 0):
        self.pairs = [(hr / 255.0, lr / 255.0) for hr, lr in pairs]
        self.r, self.size = r, size
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int):
        r, s = self.r, self.size
        xs, ys = [], []
        for _ in range(n):
            hr, lr = self.pairs[self.rng.integers(len(self.pairs))]
            u = self.rng.integers(lr.shape[0] - s + 1)
            v = self.rng.integers(lr.shape[1] - s + 1)
            xs.append(lr[u:u + s, v:v + s])
            ys.append(hr[r * u:r * (u + s), r * v:r * (v + s)])
        return (np.stack(xs)[:, None].astype(np.float32), np.stack(ys)[:, None].astype(np.float32))


# ------------------------------------------------------------------------------------------ periodic patterns
def phase_means(y: np.ndarray, r: int) -> np.ndarray:
    """The mean of an HR image (rH, rW) over its blocks at each phase: ``M[α, β] = mean_{u,v} y[r u + α, r v + β]``.

    The r x r DFT of ``M`` is, up to the factor ``H*W``, the image's DFT at the ``r``-periodic frequencies
    (multiples of 1/r cycles per pixel in both directions), so the spread of ``M`` about its mean is exactly
    the size of the image's ``r``-periodic part (Parseval): a pattern that repeats every ``r`` pixels, such as
    the checkerboard of a sub-pixel layer whose ``r*r`` phases disagree, shows up here and little else does.
    """
    H, W = y.shape[0] // r, y.shape[1] // r
    return y[:r * H, :r * W].reshape(H, r, W, r).mean(axis=(0, 2))


def periodic_rms(y: np.ndarray, r: int) -> float:
    """RMS of :func:`phase_means` about its mean, in the units of ``y``: 0 when every phase has the same mean."""
    m = phase_means(y, r)
    return float(np.sqrt(np.mean((m - m.mean()) ** 2)))

