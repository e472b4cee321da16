"""Where and why npespcn's colour pipeline differs from OpenCV's ``cv2.dnn_superres`` upsample.

Development-only: needs ``opencv-contrib-python-headless`` (the ``reference`` extra). Run from the repository
root::

    python benchmarks/opencv_colour_compare.py [--published ../shared/published] [--data ../shared/datasets/Set5]

For every image and scale the LR image is the project's (Pillow bicubic downscale of the uint8 RGB HR, see
:mod:`npespcn.evaluation.protocol`), and four uint8 RGB upscales of it are compared:

=============  =====================================================================================
``opencv``     ``cv2.dnn_superres`` ``upsample()`` on the BGR image: full-range (JPEG) YCrCb on floats in
               [0, 1], Y through the network, Cr/Cb by ``cv2.resize(INTER_CUBIC)`` (Keys a = -0.75),
               back to BGR, ``* 255`` with saturation
``full``       the same recipe in NumPy, but chroma with Pillow's bicubic kernel (a = -0.5)
               (``benchmarks/published_psnr.py:upscale_full_range``)
``npespcn``    ``npespcn.upscale(lr, r, model=pb)``: BT.601 studio-range YCbCr, the network sees studio
               ``Y / 255``, chroma by Pillow's bicubic
``opencv_y``   OpenCV's network output alone (its dnn forward on the full-range Y), for the luma check
=============  =====================================================================================

Differences are reported as the mean and maximum absolute difference on uint8 RGB (0..255), the PSNR between
two upscales, and each one's PSNR against the HR image with the project protocol (Y, border r). The pairs
isolate one cause each: ``opencv`` vs ``full`` is only the chroma interpolation kernel; ``full`` vs
``npespcn`` is only the colour convention (full vs studio range, which changes what the network sees).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from published_psnr import JPEG, upscale_full_range  # noqa: E402

from npespcn import load_model, upscale  # noqa: E402
from npespcn.evaluation.protocol import degrade, list_images, load_rgb8, score  # noqa: E402


def opencv_upsample(pb: Path, r: int, lr_rgb: np.ndarray) -> np.ndarray:
    import cv2
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(str(pb))
    sr.setModel("espcn", r)
    return np.ascontiguousarray(sr.upsample(np.ascontiguousarray(lr_rgb[..., ::-1]))[..., ::-1])


def diff(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a - b)
    mse = np.mean(d ** 2)
    return d.mean(), d.max(), (np.inf if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--published", type=Path, default=ROOT.parent / "shared" / "published")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "Set5")
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    args = p.parse_args(argv)
    import cv2
    print(f"OpenCV {cv2.__version__}; images from {args.data}")
    print("pair / scale: mean |diff|, max |diff| on uint8 RGB, PSNR between them (dB), averaged over images")
    for r in args.scales:
        pb = args.published / f"ESPCN_x{r}.pb"
        net = load_model(pb)
        acc = {k: [] for k in ("opencv-full", "full-npespcn", "opencv-npespcn", "luma", "hr_opencv", "hr_full",
                               "hr_npespcn")}
        for path in list_images(args.data):
            hr, lr = degrade(load_rgb8(path), r)
            ocv = opencv_upsample(pb, r, lr)
            full = upscale_full_range(lr, net)
            ours = upscale(lr, r, net)
            acc["opencv-full"].append(diff(ocv, full))
            acc["full-npespcn"].append(diff(full, ours))
            acc["opencv-npespcn"].append(diff(ocv, ours))
            # luma alone: OpenCV's and our full-range Y of the two results, before chroma enters
            acc["luma"].append(diff(np.rint(ocv.astype(np.float64) @ JPEG[0]), np.rint(full.astype(np.float64)
                                                                                      @ JPEG[0])))
            acc["hr_opencv"].append(score(hr, ocv, r)[0])
            acc["hr_full"].append(score(hr, full, r)[0])
            acc["hr_npespcn"].append(score(hr, ours, r)[0])
        for key in ("opencv-full", "full-npespcn", "opencv-npespcn", "luma"):
            m = np.mean(acc[key], axis=0)
            print(f"  x{r} {key:15s} mean {m[0]:.3f}  max {np.max([a[1] for a in acc[key]]):.0f}  "
                  f"PSNR {m[2]:.2f} dB")
        print(f"  x{r} PSNR vs HR (protocol, Y studio): opencv {np.mean(acc['hr_opencv']):.3f}  "
              f"full {np.mean(acc['hr_full']):.3f}  npespcn {np.mean(acc['hr_npespcn']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
