"""PSNR of the published TF-ESPCN models (``ESPCN_x{2,3,4}.pb``) on Set5 and Set14, next to bicubic.

Protocol (:mod:`npespcn.evaluation.protocol`, the project's): HR cropped to a multiple of r; LR = Pillow bicubic
downscale of the uint8 RGB HR; SR quantised to uint8 RGB; PSNR on BT.601 studio-range Y (float64) with r
border pixels removed; mean over the set; grey images as R = G = B.

Two ESPCN columns:

* ``npespcn`` -- ``npespcn.upscale(lr, r, model=pb)`` as it is: the network sees studio-range ``Y / 255``
  (values in [16/255, 235/255]) and its output is taken as studio-range Y. This is the number the issue asks
  for ("as npespcn's pipeline gives it").
* ``full-range`` -- the convention the published models were trained with (OpenCV's ``COLOR_BGR2YCrCb``,
  JPEG full range: ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb/Cr = 128 + ...``): LR converted to full-range
  YCbCr, Y / 255 through the network, Cb and Cr upscaled with Pillow's bicubic kernel (float64,
  :func:`npespcn.image.bicubic.bicubic_upscale`), back to RGB, rounded to uint8. Same protocol for the PSNR.

Usage (from the repository root; about a minute per scale on two cores)::

    python benchmarks/published_psnr.py [--published ../shared/published] [--datasets ../shared/datasets]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from npespcn import load_model, upscale  # noqa: E402
from npespcn.atomic import atomic_write  # noqa: E402
from npespcn.evaluation.metrics import psnr  # noqa: E402
from npespcn.evaluation.protocol import bicubic_upscale8, degrade, list_images, load_rgb8  # noqa: E402
from npespcn.image.bicubic import bicubic_upscale  # noqa: E402
from npespcn.image.color import rgb_to_y  # noqa: E402
from npespcn.inference.pipeline import network  # noqa: E402

# JPEG / OpenCV full-range YCbCr (ITU-T T.871), on 0..255
JPEG = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
JPEG_INV = np.linalg.inv(JPEG)


def upscale_full_range(lr: np.ndarray, net) -> np.ndarray:
    """uint8 RGB (h, w, 3) -> uint8 RGB (r h, r w, 3) with full-range Y through ``net`` (see module docstring)."""
    r = net.scale
    ycc = lr.astype(np.float64) @ JPEG.T + [0.0, 128.0, 128.0]
    y = network(net, (ycc[..., 0] / 255.0)[None, None])[0, 0].astype(np.float64) * 255.0
    cb, cr = (bicubic_upscale(ycc[..., c], r).astype(np.float64) for c in (1, 2))
    rgb = np.stack([y, cb - 128.0, cr - 128.0], axis=-1) @ JPEG_INV.T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def run(published: Path, datasets: Path, sets=("Set5", "Set14"), scales=(2, 3, 4)) -> list[dict]:
    rows = []
    for r in scales:
        net = load_model(published / f"ESPCN_x{r}.pb")
        for name in sets:
            scores = {"bicubic": [], "npespcn": [], "full_range": []}
            for path in list_images(datasets / name):
                hr, lr = degrade(load_rgb8(path), r)
                y_hr = rgb_to_y(hr)                    # evaluation.score's PSNR, without its unused SSIM
                for key, sr in (("bicubic", bicubic_upscale8(lr, r)), ("npespcn", upscale(lr, r, net)),
                                ("full_range", upscale_full_range(lr, net))):
                    scores[key].append(psnr(y_hr, rgb_to_y(sr), border=r))
            row = {"set": name, "scale": r, "n": len(scores["bicubic"]),
                   **{k: float(np.mean(v)) for k, v in scores.items()}}
            rows.append(row)
            print(f"{name:6s} x{r}  bicubic {row['bicubic']:.2f}  ESPCN (npespcn pipeline) {row['npespcn']:.2f}  "
                  f"ESPCN (full-range Y) {row['full_range']:.2f}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--published", type=Path, default=ROOT.parent / "shared" / "published")
    p.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    try:
        rows = run(args.published, args.datasets, scales=args.scales)
    except (ValueError, OSError) as e:
        print(f"published_psnr: error: {e}", file=sys.stderr)
        return 1
    print("\n| set | scale | bicubic | ESPCN (npespcn pipeline) | ESPCN (full-range Y) |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['set']} | x{row['scale']} | {row['bicubic']:.2f} | {row['npespcn']:.2f} | "
              f"{row['full_range']:.2f} |")
    if args.json:
        with atomic_write(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
