"""Every command line of npespcn: ``npespcn <command> ...`` (console script), ``python -m npespcn <command>
...`` and ``python -m npespcn.<command> ...`` are the same program.

=============  =================================================================================
command        what it does (module)
=============  =================================================================================
``upscale``    super-resolve image files, folders and glob patterns (:mod:`npespcn.cli.upscale`)
``train``      train an ESPCN (:mod:`npespcn.cli.train`)
``evaluate``   PSNR / SSIM of a model on folders of images (:mod:`npespcn.cli.evaluate`)
``convert``    convert a model file to .npz, ONNX .onnx or TensorFlow .pb (:mod:`npespcn.cli.convert`)
``demo``       draw a test chart and compare bicubic with ESPCN (:mod:`npespcn.cli.demo`)
=============  =================================================================================

Each command's module has ``main(argv) -> exit status`` and is a thin layer over the library. A command's
module is imported only when the command runs, so that ``npespcn upscale`` does not pay for the trainer.
"""
from __future__ import annotations

import importlib
import sys
import types

from ..version import __version__

COMMANDS = {
    "upscale": "super-resolve images (files, folders, glob patterns)",
    "train": "train an ESPCN (built-in or your own images)",
    "evaluate": "PSNR / SSIM of a model on folders of images",
    "convert": "convert a model file (.npz / .onnx / .pb / .pth) to .npz, .onnx or .pb",
    "demo": "draw a test chart, upscale it with bicubic and ESPCN, save both side by side",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: npespcn <command> [options]    (or: python -m npespcn <command> ...)", "",
             "ESPCN super-resolution (Shi et al., CVPR 2016) in NumPy + numba.", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help     show this message; 'npespcn <command> --help' for a command's options",
              "  -V, --version  print npespcn's version"]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run ``npespcn <command> ...``; returns the exit status (0 ok, 1 some work failed, 2 usage error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"npespcn {__version__}")
        return 0
    command = argv[0]
    if command not in COMMANDS:
        print(f"npespcn: error: unknown command {command!r}; expected one of {', '.join(COMMANDS)} "
              f"(see npespcn --help)", file=sys.stderr)
        return 2
    return importlib.import_module(f"{__name__}.{command}").main(argv[1:])


def door(module_name: str, command: str, function=None) -> None:
    """Make ``python -m npespcn.<command>`` run ``npespcn <command>``; called by those modules.

    When the module is imported instead (``import npespcn.upscale``), Python binds it as the package's
    attribute, where the function of the same name was. With ``function`` the module becomes callable as
    that function, so ``npespcn.upscale(image)`` keeps working after such an import."""
    if module_name == "__main__":
        sys.exit(main([command, *sys.argv[1:]]))
    if function is not None:
        module = sys.modules[module_name]
        module.__class__ = type("CallableModule", (types.ModuleType,), {
            "__call__": staticmethod(function), "__doc__": function.__doc__})
