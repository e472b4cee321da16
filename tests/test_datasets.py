"""Dataset downloads against a local HTTP server on 127.0.0.1 serving ``../shared/datasets``: verified
files, skip of what is already there, corrupted and truncated downloads, the cache folder."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
from PIL import Image

from npespcn.training import datasets
from npespcn.training.manifest import MANIFEST


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the shared folder; ``server.corrupt`` / ``server.truncate`` name files to spoil."""

    def log_message(self, *args):            # keep the test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name in self.server.corrupt or name in self.server.truncate:
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if name in self.server.corrupt:
                self.wfile.write(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
            else:
                self.wfile.write(data[: len(data) // 2])      # then the connection closes early
            return
        super().do_GET()


@pytest.fixture
def server(set5_dir):
    root = set5_dir.parent
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_Handler, directory=str(root)))
    httpd.requests, httpd.corrupt, httpd.truncate = [], set(), set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_manifest_lists_the_three_datasets():
    assert set(MANIFEST) == {"T91", "Set5", "Set14"}
    assert (len(MANIFEST["T91"]), len(MANIFEST["Set5"]), len(MANIFEST["Set14"])) == (91, 5, 14)
    for files in MANIFEST.values():
        for sha, size in files.values():
            assert len(sha) == 64 and int(sha, 16) >= 0 and size > 0


def test_manifest_matches_the_shared_copies(set5_dir, set14_dir, t91_dir):
    for name, folder in (("Set5", set5_dir), ("Set14", set14_dir), ("T91", t91_dir)):
        assert sorted(p.name for p in folder.iterdir()) == sorted(MANIFEST[name])
        for fname, (sha, size) in MANIFEST[name].items():
            assert (folder / fname).stat().st_size == size and _sha(folder / fname) == sha


def test_download_verifies_and_skips_what_is_there(server, tmp_path, set5_dir):
    lines = []
    folder = datasets.download("Set5", url=server.url, root=tmp_path, log=lines.append)
    assert folder == tmp_path / "Set5"
    assert sorted(p.name for p in folder.iterdir()) == sorted(MANIFEST["Set5"])
    for p in folder.iterdir():
        assert p.read_bytes() == (set5_dir / p.name).read_bytes()
    assert len(server.requests) == 5 and len(lines) == 5
    assert datasets.verify("Set5", root=tmp_path) == []
    datasets.download("Set5", url=server.url, root=tmp_path)
    assert len(server.requests) == 5                       # nothing fetched again
    # a damaged file is noticed and fetched again
    (folder / "bird.png").write_bytes(b"oops")
    assert datasets.verify("Set5", root=tmp_path) == ["bird.png"]
    datasets.download("Set5", url=server.url, root=tmp_path)
    assert server.requests[-1].endswith("/Set5/bird.png") and len(server.requests) == 6
    assert datasets.verify("Set5", root=tmp_path) == []


def test_download_all_into_the_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NPESPCN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NPESPCN_DATASETS_URL", server.url)
    got = datasets.download_all()
    assert got == {n: tmp_path / "cache" / n for n in ("T91", "Set5", "Set14")}
    assert len(server.requests) == 91 + 5 + 14
    assert all(datasets.verify(n) == [] for n in got)
    # the trainer finds T91 there
    monkeypatch.delenv("NPESPCN_DATA", raising=False)
    assert datasets.find_training_data() == (tmp_path / "cache" / "T91", [str(tmp_path / "cache" / "T91")])
    folder, images, looked = datasets.find_training_data(with_images=True)   # the list, not walked twice
    assert folder == tmp_path / "cache" / "T91" and len(images) == 91 and looked == [str(folder)]


@pytest.mark.parametrize("kind", ["corrupt", "truncate"])
def test_spoiled_download_raises_and_leaves_nothing(server, tmp_path, kind):
    getattr(server, kind).add("butterfly.png")
    with pytest.raises(datasets.DownloadError) as e:
        datasets.download("Set5", url=server.url, root=tmp_path)
    msg = str(e.value)
    assert "butterfly.png" in msg
    assert ("corrupted" in msg and "SHA-256" in msg) if kind == "corrupt" else "truncated" in msg
    folder = tmp_path / "Set5"
    assert not (folder / "butterfly.png").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]          # no partial files
    # files fetched before the bad one are complete and verified
    assert all(_sha(p) == MANIFEST["Set5"][p.name][0] for p in folder.iterdir())


def test_missing_file_and_unknown_dataset(server, tmp_path):
    with pytest.raises(datasets.DownloadError, match="download failed.*404|404"):
        datasets.download("Set5", url=server.url + "/nothing-here", root=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'Set9'.*T91, Set5, Set14"):
        datasets.download("Set9", url=server.url, root=tmp_path)


def test_no_mirror_configured_explains(tmp_path, monkeypatch):
    monkeypatch.delenv("NPESPCN_DATASETS_URL", raising=False)
    with pytest.raises(datasets.DownloadError, match="NPESPCN_DATASETS_URL.*SRCNN"):
        datasets.download("Set5", root=tmp_path)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NPESPCN_CACHE", str(tmp_path / "c"))
    assert datasets.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NPESPCN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "npespcn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "npespcn"


def test_cli_download_then_train_finds_the_data(server, tmp_path, monkeypatch):
    from npespcn.cli.train import main
    monkeypatch.setenv("NPESPCN_CACHE", str(tmp_path / "cache"))
    assert main(["--download", "--download-url", server.url, "--quiet"]) == 0
    assert datasets.verify("T91") == [] and datasets.verify("Set14") == []


def test_cli_download_error_is_one_line(tmp_path, monkeypatch, capsys):
    from npespcn.cli.train import main
    monkeypatch.setenv("NPESPCN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NPESPCN_DATASETS_URL", raising=False)
    assert main(["--download"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: no download mirror configured") and err.count("\n") == 1


def test_the_built_in_sets_are_the_manifest_s_files():
    root = datasets.builtin_dir()
    for name in datasets.DATASETS:
        assert datasets.verify(name, root=root) == [], name
        assert sorted(p.name for p in (root / name).iterdir()) == sorted(datasets.MANIFEST[name])


def test_a_set_is_looked_for_in_the_variable_then_the_cache_then_built_in(tmp_path, monkeypatch):
    monkeypatch.setenv("NPESPCN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NPESPCN_DATASETS", raising=False)
    assert datasets.find_dataset("Set5")[0] == datasets.builtin_dir() / "Set5"
    (tmp_path / "cache" / "Set5").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "cache" / "Set5" / "a.png")
    assert datasets.find_dataset("Set5")[0] == tmp_path / "cache" / "Set5"
    monkeypatch.setenv("NPESPCN_DATASETS", str(tmp_path / "mine"))
    (tmp_path / "mine" / "Set5").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "mine" / "Set5" / "b.png")
    folder, looked = datasets.find_dataset("Set5")
    assert folder == tmp_path / "mine" / "Set5" and looked == [str(folder)]
    assert datasets.find_dataset("Set5", tmp_path / "nowhere") == (None, [str(tmp_path / "nowhere")])
