"""A source checkout without the installed data packages (``npespcn.weights``, ``npespcn.data``) still
finds the shipped weights and the built-in sets next to ``npespcn/`` — as when the tests run from a clone
after a non-editable ``pip install .``, the clone's ``npespcn/`` shadowing the installed one."""
from __future__ import annotations

from pathlib import Path

from npespcn.nn import pretrained
from npespcn.training import datasets

ROOT = Path(__file__).resolve().parent.parent


def _no_package(name):
    raise ModuleNotFoundError(f"No module named {name!r}")


def test_a_bare_checkout_finds_weights_and_data_beside_the_package(monkeypatch):
    monkeypatch.setattr(pretrained.resources, "files", _no_package)
    monkeypatch.setattr(datasets.resources, "files", _no_package)
    assert pretrained.weights_dir() == ROOT / "weights"
    assert datasets.builtin_dir() == ROOT / "data"
    assert (pretrained.weights_dir() / "espcn_x3.npz").is_file()
    assert (datasets.builtin_dir() / "Set5").is_dir()
