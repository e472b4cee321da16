"""What every example shares: finding npespcn and the data, the command line, and small image helpers.

Each example is a script ``NN_name.py`` with ``main(argv=None, out_dir=None, fast=False) -> dict``: it
prints what it shows, asserts what it claims, writes its pictures as PNG into ``out_dir`` (default
``examples/out/``) and returns the numbers it printed, so the test suite can check them.
"""
from __future__ import annotations

import argparse
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

from npespcn.color import rgb_to_y

DEFAULT_OUT = HERE / "out"


# ------------------------------------------------------------------------------------------ command line
def parse_args(argv, description: str):
    """The two options every example takes: ``--out DIR`` and ``--fast``."""
    p = argparse.ArgumentParser(description=description)
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


def run(main) -> None:
    """``if __name__ == "__main__": run(main)``: one-line errors on stderr and exit status 1, no traceback.

    AssertionError is not caught: a failed claim should show where it failed.
    """
    try:
        main(sys.argv[1:])
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


# ------------------------------------------------------------------------------------------ data
def datasets_dir() -> Path:
    """``$NPESPCN_DATASETS``, else ``$NPESPCN_SHARED/datasets``, else ``<repo>/../shared/datasets``."""
    shared = Path(os.environ.get("NPESPCN_SHARED", ROOT.parent / "shared"))
    return Path(os.environ.get("NPESPCN_DATASETS", shared / "datasets"))


def find_image(dataset: str, name: str):
    """Path of ``<datasets>/<dataset>/<name>`` or None when it is absent."""
    path = datasets_dir() / dataset / name
    return path if path.is_file() else None


def load_y(path) -> np.ndarray:
    """Luma Y (H, W) float64 on 16..235 (BT.601 studio range) of an image file."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    return rgb_to_y(rgb)


def synthetic_chart(size: int = 96) -> np.ndarray:
    """A deterministic test chart (size, size) on 16..235: a zone plate, bars, a disc and a ramp.

    Stands in for a photograph when the datasets are absent: it has edges at every angle and detail
    at every frequency, which is what super-resolution is about.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    zone = 0.5 + 0.5 * np.cos(110.0 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2))
    img = zone.copy()
    img[: size // 3, : size // 2] = (np.floor(xx[: size // 3, : size // 2] * 16) % 2)
    disc = (xx - 0.75) ** 2 + (yy - 0.25) ** 2 < 0.03
    img[disc] = 0.9
    img[-size // 5:, :] = xx[-size // 5:, :]
    return 16.0 + 219.0 * img


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a float image (H, W) with Pillow (antialiased when shrinking, like MATLAB)."""
    im = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32))
    return np.asarray(im.resize((width, height), Image.BICUBIC), dtype=np.float64)


def degrade(hr: np.ndarray, r: int):
    """Crop ``hr`` to a multiple of ``r`` and shrink it bicubically: returns ``(hr_cropped, lr)``."""
    H, W = (hr.shape[0] // r) * r, (hr.shape[1] // r) * r
    hr = hr[:H, :W]
    return hr, resize(hr, H // r, W // r)
