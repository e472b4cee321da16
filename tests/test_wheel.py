"""A wheel built from the repository, installed into a fresh virtual environment, finds its shipped
weights and upscales from another working directory (slow: builds and installs).

The source is copied to a temporary folder first (building in place would write ``build/`` and
``*.egg-info`` into the shared working tree). A stand-in ``weights/espcn_x3.npz`` is added to the copy
when the real one is not there yet, so the test checks the packaging mechanism (``weights/`` installed
as ``npespcn.weights`` and found through ``importlib.resources``), not the training. The venv uses
this interpreter's site-packages on its path so numpy/numba/scipy/pillow are not downloaded.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, cwd, env=None):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_installed_wheel_upscales_with_its_shipped_weights(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    if not (src / "README.md").exists():
        (src / "README.md").write_text("npespcn\n")
    shutil.copytree(ROOT / "npespcn", src / "npespcn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "weights", src / "weights", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", src / "data", ignore=shutil.ignore_patterns("__pycache__"))
    stand_in = not (src / "weights" / "espcn_x3.npz").exists()
    if stand_in:
        sys.path.insert(0, str(ROOT))
        from npespcn import ESPCN
        ESPCN.paper(3, seed=11).save(src / "weights" / "espcn_x3.npz")

    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        cwd=tmp_path)
    wheels = list(dist.glob("npespcn-*.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    # numpy, numba, scipy and pillow from this interpreter's environment (not downloaded): its
    # site-packages as a plain path after the new venv's own (so the wheel, not this checkout, is found)
    venv_site = run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
    (Path(venv_site.stdout.strip()) / "outer_env.pth").write_text(
        "\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[0])], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    script = textwrap.dedent(f"""
        import sys, numpy as np, npespcn
        from npespcn.nn import pretrained
        assert {str(ROOT)!r} not in npespcn.__file__, npespcn.__file__
        assert "site-packages" in npespcn.__file__, npespcn.__file__
        assert "site-packages" in str(pretrained.weights_dir()), pretrained.weights_dir()
        img = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
        out = npespcn.upscale(img, 3)
        assert out.shape == (60, 72, 3) and out.dtype == np.uint8
        ref = npespcn.upscale(img, 3, npespcn.load_model(pretrained.shipped_path("espcn", 3)))
        assert (out == ref).all()
        from npespcn.training import datasets
        assert "site-packages" in str(datasets.builtin_dir()), datasets.builtin_dir()
        assert all(datasets.verify(name, root=datasets.builtin_dir()) == [] for name in datasets.DATASETS)
        print("OK", npespcn.__file__)
    """)
    res = run([str(py), "-c", script], cwd=elsewhere, env=env)
    assert "OK" in res.stdout and "site-packages" in res.stdout

    # the command line from the installed package, too
    import numpy as np
    from PIL import Image
    Image.fromarray(np.zeros((12, 12, 3), np.uint8) + 90).save(elsewhere / "a.png")
    run([str(py), "-m", "npespcn.upscale", "a.png", "-o", "b.png"], cwd=elsewhere, env=env)
    assert Image.open(elsewhere / "b.png").size == (36, 36)
    run([str(venv / "bin" / "npespcn"), "upscale", "a.png", "-o", "c.png"], cwd=elsewhere, env=env)
    assert Image.open(elsewhere / "c.png").size == (36, 36)
