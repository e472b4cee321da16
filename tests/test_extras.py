"""The optional-extras door: a present module is returned, a missing one is one line naming the extra."""
import pytest

from npespcn.extras import EXTRAS, MissingExtra, require


def test_a_present_module_is_imported():
    assert require("json").dumps([1]) == "[1]"


def test_a_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(EXTRAS, "npespcn_no_such_module", ("NoSuch", "video"))
    with pytest.raises(MissingExtra) as e:
        require("npespcn_no_such_module", "video files")
    msg = str(e.value)
    assert "\n" not in msg and "NoSuch" in msg and "video files" in msg
    assert 'pip install "npespcn[video]"' in msg
    assert isinstance(e.value, ImportError)


def test_an_unknown_missing_module_names_pip_install():
    with pytest.raises(MissingExtra, match="pip install npespcn_no_such_module2"):
        require("npespcn_no_such_module2")


def test_the_core_never_imports_an_extra():
    import subprocess
    import sys
    code = ("import sys, npespcn, npespcn.cli.upscale, npespcn.cli.train, npespcn.cli.convert\n"
            f"bad = [m for m in {sorted(EXTRAS)!r} if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
