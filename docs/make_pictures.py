"""Redraw the pictures of docs/how-it-works.md: ``python docs/make_pictures.py``.

Runs the examples that draw them (``--fast``, the mode the tests run, so the pictures match what the tests
check) into a temporary folder and copies the pictures the guide shows into ``docs/pictures/``. Nothing else
is written. ``tests/test_guide.py`` checks that every picture the guide names is there.
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PICTURES = Path(__file__).resolve().parent / "pictures"

SHOWN = {
    "01_periodic_shuffle": ["01_shuffled.png"],
    "02_subpixel_is_deconvolution": ["02_kernel_rearrangement.png"],
    "03_im2col": ["03_im2col.png"],
    "04_gradient_check": ["04_gradient_check_eps.png"],
    "05_tiny_training": ["05_frame_and_checkerboard.png"],
    "06_inside_the_model": ["06_network.png", "06_receptive_field.png", "06_subpixel_channels.png"],
    "07_checkerboard_and_icnr": ["07_flat_tiles.png", "07_init_tiles.png"],
    "08_reparameterised_training": ["08_fold.png"],
}
"""The pictures of the guide, by the example that draws them."""


def run_example(name: str, out: Path) -> None:
    """``examples/<name>.py``'s ``main(out_dir=out, fast=True)``."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"npespcn_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(out_dir=out, fast=True)


def main() -> None:
    PICTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, files in SHOWN.items():
            out = Path(tmp) / name
            run_example(name, out)
            for f in files:
                shutil.copyfile(out / f, PICTURES / f)
                print(f"docs/pictures/{f}")


if __name__ == "__main__":
    main()
