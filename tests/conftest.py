"""Shared test helpers: where the read-only shared material lives, and skips when it is absent.

Locations come from environment variables, each defaulting to ``../shared/...`` next to the project root:

* ``NPESPCN_SHARED``     the shared folder (default ``<root>/../shared``)
* ``NPESPCN_DATASETS``   T91, Set5, Set14      (default ``$NPESPCN_SHARED/datasets``, else the built-in
                                              sets of ``<root>/data``)
* ``NPESPCN_PUBLISHED``  ESPCN_x{2,3,4}.pb     (default ``$NPESPCN_SHARED/published``)
* ``NPESPCN_REFERENCE``  PyTorch reference     (default ``$NPESPCN_SHARED/reference``)
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_dir() -> Path:
    return Path(os.environ.get("NPESPCN_SHARED", ROOT.parent / "shared"))


def datasets_dir() -> Path:
    if os.environ.get("NPESPCN_DATASETS"):
        return Path(os.environ["NPESPCN_DATASETS"])
    shared = shared_dir() / "datasets"
    return shared if shared.is_dir() else ROOT / "data"


def published_dir() -> Path:
    return Path(os.environ.get("NPESPCN_PUBLISHED", shared_dir() / "published"))


def reference_dir() -> Path:
    return Path(os.environ.get("NPESPCN_REFERENCE", shared_dir() / "reference"))


def require(path: Path, what: str, env: str) -> Path:
    """Return ``path`` or skip the test saying what is missing and which variable points to it."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set {env} to its location)")
    return path


@pytest.fixture
def set5_dir() -> Path:
    return require(datasets_dir() / "Set5", "Set5", "NPESPCN_DATASETS")


@pytest.fixture
def set14_dir() -> Path:
    return require(datasets_dir() / "Set14", "Set14", "NPESPCN_DATASETS")


@pytest.fixture
def t91_dir() -> Path:
    return require(datasets_dir() / "T91", "T91", "NPESPCN_DATASETS")


@pytest.fixture
def published() -> Path:
    return require(published_dir(), "published ESPCN .pb files", "NPESPCN_PUBLISHED")


@pytest.fixture
def reference() -> Path:
    return require(reference_dir(), "the PyTorch reference state dict", "NPESPCN_REFERENCE")


@pytest.fixture(scope="module")
def client():
    """A client of a local Dask cluster of two worker processes, as ``--dask local:2`` starts it (one per
    test module; the module skips first where dask.distributed is not installed)."""
    from npespcn.inference.batch import dask_client
    c, cluster = dask_client("local:2")
    yield c
    c.close()
    cluster.close()
