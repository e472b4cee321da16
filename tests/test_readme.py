"""Every command and every code example of README.md works as written.

The README's fenced blocks are read from the file at collection time:

* every ```python block runs in a subprocess;
* every line of every ```bash block is split at ``&&`` and each command is handled by its kind:

  ======================================  ====================================================================
  command                                 what this test does
  ======================================  ====================================================================
  ``npespcn ...``, ``python -m npespcn``  runs it (``npespcn`` as ``python -m npespcn``: the same program,
  ``...``, ``python examples/...``        also without the console script on PATH); the exit status must be
                                          0, and a trailing ``# -> FILE`` comment must name a file that exists
                                          afterwards
  ``npespcn ...  # long-running ...``     parses its arguments with the command's own parser
  ``npespcn ...  # needs: ...``           (``npespcn.cli.<command>.build_parser()``): every option shown exists
                                          and takes the values shown (trainings and full evaluations take hours,
                                          or need data CI does not have)
  any other line ``# needs: ...``         skipped, with the comment as the reason
  ``pip install ...``                     skipped (``.ci/run`` runs the Quick start's in a fresh venv)
  ``python -m pytest ...``                skipped (the test suite itself)
  ``python benchmarks/...``               skipped (minutes of timing; PyTorch / OpenCV)
  anything else                           fails: teach this file how to check it
  ======================================  ====================================================================

Each command and each block runs in a fresh folder (its current directory) holding the files the README's
examples use: ``photo.png``, ``shots/beach.png``, ``shots/street.png``, ``raw/night.jpg``, ``my_model.npz``
(an untrained paper model), ``spinner.gif`` (three frames), ``clip.mp4`` (eight frames and a sound
track, made with PyAV; a command naming a video file is skipped when PyAV is not installed) and a copy of
``examples/``; so nothing is written into the repository and
nothing needs ``../shared``. ``NPESPCN_BACKEND`` is removed from the commands' environment: the README
describes the default backend (e.g. tiling being bitwise exact).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT = 300                    # seconds per command; a cold numba cache compiles for a while
KNOWN_LANGUAGES = {"bash", "python", "text"}
HAVE_PYAV = importlib.util.find_spec("av") is not None
VIDEO_FILE = re.compile(r"\.(mp4|mkv|mov|webm|avi)$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------- reading
def fenced_blocks(text: str) -> list[tuple[str, int, list[tuple[int, str]]]]:
    """``(language, line number of the opening fence, [(line number, line), ...])`` of every fenced block."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if current is None:
            m = re.match(r"^```\s*([\w+-]*)\s*$", line)
            if m:
                current = (m.group(1).lower(), number, [])
        elif line.startswith("```"):
            blocks.append(current)
            current = None
        else:
            current[2].append((number, line))
    assert current is None, f"README.md: the block opened at line {current[1]} is never closed"
    return blocks


def split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)``: a ``#`` starting a word outside quotes begins the shell comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip(), line[i + 1:].strip()
    return line.strip(), ""


ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class Command:
    """One command of a README bash line (a line may chain several with ``&&``)."""

    def __init__(self, lineno: int, line: str, code: str, comment: str):
        self.lineno, self.line, self.code, self.comment = lineno, line, code, comment
        tokens = shlex.split(code)
        self.env = {}
        while tokens and ASSIGNMENT.match(tokens[0]):
            name, _, value = tokens.pop(0).partition("=")
            self.env[name] = value
        self.tokens = tokens

    def __repr__(self):
        return f"README.md:{self.lineno}: {self.code}"

    def npespcn_argv(self):
        """``[command args...]`` as ``npespcn`` gets them, or None if this is not an npespcn command."""
        t = self.tokens
        if t and t[0] == "npespcn":
            return t[1:]
        if t and t[0].startswith("npespcn-"):                       # the compatibility aliases
            return [t[0][len("npespcn-"):], *t[1:]]
        if len(t) >= 3 and t[0] == "python" and t[1] == "-m":
            if t[2] == "npespcn":
                return t[3:]
            if t[2].startswith("npespcn."):
                return [t[2][len("npespcn."):], *t[3:]]
        return None

    def kind(self) -> tuple[str, str]:
        """``("run" | "parse" | "skip", reason)``."""
        t, marker = self.tokens, self.comment.lower()
        is_npespcn = self.npespcn_argv() is not None
        if marker.startswith("long-running"):
            if not is_npespcn:
                return "fail", "only npespcn commands can be marked long-running (their options are parsed)"
            return "parse", "long-running: its options are parsed"
        if marker.startswith("needs"):
            if is_npespcn:
                return "parse", f"{self.comment}: its options are parsed"
            return "skip", self.comment
        if t[:1] == ["pip"]:
            return "skip", "installs packages (.ci/run runs the Quick start's install in a fresh venv)"
        if t[:3] == ["python", "-m", "pytest"]:
            return "skip", "the test suite itself"
        if t[:1] == ["python"] and len(t) > 1 and t[1].startswith("benchmarks/"):
            return "skip", "benchmarks take minutes and compare with PyTorch / OpenCV"
        if is_npespcn:
            return "run", ""
        if t[:1] == ["python"] and len(t) > 1 and t[1].startswith("examples/"):
            return "run", ""
        return "fail", ("tests/test_readme.py does not know how to check this command: run it, mark it "
                        "'# long-running' or '# needs: ...', or teach the test")


def readme_commands(text: str) -> list[Command]:
    out = []
    for lang, _, lines in fenced_blocks(text):
        if lang != "bash":
            continue
        for lineno, line in lines:
            if not line.strip():
                continue
            code, comment = split_comment(line)
            for part in code.split("&&"):
                out.append(Command(lineno, line, part.strip(), comment))
    return out


def python_blocks(text: str) -> list[tuple[int, str]]:
    return [(start, "\n".join(line for _, line in lines) + "\n")
            for lang, start, lines in fenced_blocks(text) if lang == "python"]


TEXT = README.read_text(encoding="utf-8")
COMMANDS = readme_commands(TEXT)
PYTHON = python_blocks(TEXT)


# ----------------------------------------------------------------------------------------- workspace
def _picture(h: int, w: int, seed: int) -> np.ndarray:
    """A small photo-like RGB image: smooth gradients, a disc, stripes and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    disc = ((x - 0.5) ** 2 + (y - 0.45) ** 2 < 0.08).astype(float)
    stripes = 0.5 + 0.5 * np.sin(40 * x + 10 * y)
    rgb = np.stack([0.6 * x + 0.4 * disc, 0.5 * y + 0.3 * stripes, 0.8 - 0.5 * x * y], axis=-1)
    rgb += rng.normal(0, 0.02, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def make_workspace(path: Path) -> Path:
    """The files the README's examples use (see the module docstring)."""
    from npespcn import ESPCN

    path.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_picture(40, 48, 0)).save(path / "photo.png")
    (path / "shots").mkdir()
    Image.fromarray(_picture(48, 60, 1)).save(path / "shots" / "beach.png")
    Image.fromarray(_picture(48, 48, 2)).convert("L").save(path / "shots" / "street.png")
    (path / "raw").mkdir()
    Image.fromarray(_picture(36, 48, 3)).save(path / "raw" / "night.jpg", quality=90)
    ESPCN.paper(3).save(path / "my_model.npz")
    spin = [Image.fromarray(np.roll(_picture(24, 32, 4), 5 * i, axis=1)) for i in range(3)]
    spin[0].save(path / "spinner.gif", save_all=True, append_images=spin[1:], duration=[80, 80, 160], loop=0)
    if HAVE_PYAV:
        make_clip(path / "clip.mp4")
    shutil.copytree(ROOT / "examples", path / "examples",
                    ignore=shutil.ignore_patterns("out", "__pycache__", "*.png"))
    return path


def make_clip(path: Path, frames: int = 8) -> None:
    """A short H.264 clip with an AAC sound track, 48x32 at 25 frames per second."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 48, 32, "yuv420p"
        a = c.add_stream("aac", rate=8000)
        a.layout = "mono"
        for i in range(frames):
            img = np.roll(_picture(32, 48, 5), 3 * i, axis=1)
            for pk in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")):
                c.mux(pk)
        for pk in v.encode():
            c.mux(pk)
        tone = (0.2 * np.sin(np.arange(8000) * 0.1))[None].astype(np.float32)
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for pk in [*a.encode(frame), *a.encode()]:
            c.mux(pk)


def environment(extra=None) -> dict:
    env = dict(os.environ)
    env.pop("NPESPCN_BACKEND", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def run(argv, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def report(proc) -> str:
    return f"exit status {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


# ----------------------------------------------------------------------------------------- checking
def run_command(cmd: Command, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``cmd`` as written in ``cwd``; ``npespcn`` is ``python -m npespcn``, ``python`` this Python."""
    assert not re.search(r"[|;<>`$]", cmd.code), f"{cmd}: shell operators and variables are not supported here"
    argv = cmd.npespcn_argv()
    argv = [sys.executable, "-m", "npespcn", *argv] if argv is not None else [sys.executable, *cmd.tokens[1:]]
    return run(argv, cwd, environment(cmd.env))


def parse_command(cmd: Command) -> None:
    """Parse ``cmd``'s arguments with the command's own argparse parser; fails on any unknown or
    abbreviated option or bad value (argparse's SystemExit)."""
    from npespcn.cli import COMMANDS as CLI_COMMANDS

    argv = cmd.npespcn_argv()
    assert argv and argv[0] in CLI_COMMANDS, f"{cmd}: unknown npespcn command {argv[:1]}"
    module = importlib.import_module(f"npespcn.cli.{argv[0]}")
    assert hasattr(module, "build_parser"), (f"{cmd}: npespcn.cli.{argv[0]} has no build_parser(), so this "
                                             f"command cannot be checked without running it; do not mark it")
    parser = module.build_parser()
    parser.allow_abbrev = False                  # the README spells every option in full
    try:
        parser.parse_args(argv[1:])
    except SystemExit as e:
        pytest.fail(f"{cmd}: its arguments do not parse (exit status {e.code})")


def _id(cmd: Command) -> str:
    return re.sub(r"[^\w./-]+", "", f"L{cmd.lineno}-{'-'.join(cmd.tokens[:3])}")


@pytest.mark.parametrize("cmd", COMMANDS, ids=[_id(c) for c in COMMANDS])
def test_readme_command(cmd, tmp_path):
    kind, reason = cmd.kind()
    if kind == "fail":
        pytest.fail(f"{cmd}: {reason}")
    if kind == "skip":
        pytest.skip(f"{cmd}: {reason}")
    if kind == "parse":
        parse_command(cmd)
        return
    if not HAVE_PYAV and any(VIDEO_FILE.search(t) for t in cmd.tokens):
        pytest.skip(f'{cmd}: PyAV is not installed (pip install "npespcn[video]")')
    ws = make_workspace(tmp_path / "ws")
    proc = run_command(cmd, ws)
    assert proc.returncode == 0, f"{cmd}\n{report(proc)}"
    assert "Traceback" not in proc.stderr, f"{cmd}\n{report(proc)}"
    made = re.match(r"->\s*(\S+)", cmd.comment)
    if made:
        assert (ws / made.group(1)).is_file(), f"{cmd}: the README says it writes {made.group(1)}; it did not"


@pytest.mark.parametrize("start,code", PYTHON, ids=[f"L{s}" for s, _ in PYTHON])
def test_readme_python_block(start, code, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    (ws / "readme_block.py").write_text(code, encoding="utf-8")
    proc = run([sys.executable, "readme_block.py"], ws, environment())
    assert proc.returncode == 0, f"README.md: the python block at line {start}\n{code}\n{report(proc)}"


# -------------------------------------------------------------------------------- the README's shape
def test_readme_has_examples_and_only_known_blocks():
    langs = {lang for lang, _, _ in fenced_blocks(TEXT)}
    assert langs <= KNOWN_LANGUAGES, f"README.md: fenced blocks in {sorted(langs - KNOWN_LANGUAGES)} are not checked"
    kinds = [c.kind()[0] for c in COMMANDS]
    assert kinds.count("run") >= 5 and "parse" in kinds and len(PYTHON) >= 2


def test_quick_start_block_is_what_ci_runs():
    """``.ci/run`` runs the first bash block after ``## Quick start`` and wants exactly two commands."""
    after = TEXT.split("\n## Quick start", 1)[1]
    lang, _, lines = next(b for b in fenced_blocks(after) if b[0] == "bash")
    commands = [line for _, line in lines if line.strip()]
    assert len(commands) == 2, commands
    # the test extra, and optional extras whose tests CI runs (".[test,video,dask]")
    assert re.match(r'pip install "\.\[test(,[a-z]+)*\]" && ', commands[0]) and commands[1] == "python -m pytest"
    extras = re.match(r'pip install "\.\[([\w,]+)\]"', commands[0]).group(1).split(",")
    assert "video" in extras and "dask" in extras


# ------------------------------------------------------------------------------ the checks can fail
def test_a_misspelt_option_fails_the_parse_check():
    for typo in ("--epohcs 5", "--epoch 5", "--scale three"):   # misspelt, abbreviated, a bad value
        bad = readme_commands(f"```bash\nnpespcn train --scale 3 {typo}   # long-running\n```\n")[0]
        assert bad.kind()[0] == "parse"
        with pytest.raises(pytest.fail.Exception):
            parse_command(bad)
    good = readme_commands("```bash\nnpespcn train --scale 3 --epochs 5   # long-running\n```\n")[0]
    parse_command(good)


def test_a_misspelt_option_fails_the_run_check(tmp_path):
    bad = readme_commands("```bash\nnpespcn upscale photo.png --overwirte\n```\n")[0]
    assert bad.kind()[0] == "run"
    proc = run_command(bad, make_workspace(tmp_path / "ws"))
    assert proc.returncode == 2 and "--overwirte" in proc.stderr, report(proc)


def test_unknown_commands_are_not_waved_through():
    assert readme_commands("```bash\nrm -rf build/\n```\n")[0].kind()[0] == "fail"
    assert readme_commands("```bash\npython setup.py install\n```\n")[0].kind()[0] == "fail"
    assert readme_commands("```bash\npython -m pytest -q  # fast\n```\n")[0].kind()[0] == "skip"
    both = readme_commands('```bash\npip install ".[test]" && npespcn upscale --demo   # x\n```\n')
    assert [c.kind()[0] for c in both] == ["skip", "run"]
