"""The one ``npespcn`` command: ``python -m npespcn <cmd>``, ``python -m npespcn.<cmd>`` and the console
script's entry point run the same program; ``--version``; every ``--help`` states each default once."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import npespcn
from npespcn import cli

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = tuple(cli.COMMANDS)


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, **kw)


def test_version_in_every_form(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"npespcn {npespcn.__version__}"
    proc = run("-m", "npespcn", "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"npespcn {npespcn.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", npespcn.__version__)


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^\s+{c}\s", out, re.M) for c in COMMANDS)
    assert cli.main([]) == 2                          # no command: the usage, and a usage error


def test_unknown_command_is_one_line_exit_2(capsys):
    assert cli.main(["upscal"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown command 'upscal'" in err and "upscale" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_module_door_and_subcommand_print_the_same_help(command):
    a = run("-m", "npespcn", command, "--help")
    b = run("-m", f"npespcn.{command}", "--help")
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and a.stdout.startswith(f"usage: npespcn {command}")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_states_its_default_at_most_once(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    options = text.split("options:", 1)[1]
    entries = re.split(r"\n(?=  -)", options.strip("\n"))
    for entry in entries:
        flag = entry.split()[0]
        if flag in ("-h,", "--help"):
            continue
        assert len(" ".join(entry.split()[1:]).strip()) > 3, f"{command} {flag} has no help"
        assert entry.count("default") <= 1, f"{command} {flag} states its default twice: {entry!r}"


def test_importing_a_door_keeps_the_function_callable():
    code = ("import numpy as np, npespcn, npespcn.upscale, npespcn.evaluate\n"
            "from npespcn.inference import upscale\n"
            "assert callable(npespcn.upscale) and callable(npespcn.evaluate)\n"
            "img = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)\n"
            "m = npespcn.ESPCN.paper(2, seed=1)\n"
            "assert np.array_equal(npespcn.upscale(img, 2, m), upscale(img, 2, m))\n"
            "print('ok')")
    proc = run("-c", code)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_console_scripts_point_at_the_cli():
    text = (ROOT / "setup.cfg").read_text()
    assert re.search(r"^\s+npespcn = npespcn\.cli:main$", text, re.M)
    for target in re.findall(r"=\s*(npespcn[\w.]*):(\w+)", text):
        module, func = target
        mod = __import__(module, fromlist=[func])
        assert callable(getattr(mod, func)), target
