"""``npespcn demo``: the test-chart demo of :mod:`npespcn.evaluation.chart` from the command line."""
from __future__ import annotations

import sys

from ..evaluation.chart import run_demo
from .common import HelpFormatter, OneLineParser


def main(argv=None) -> int:
    parser = OneLineParser(prog="npespcn demo", formatter_class=HelpFormatter,
                           description="Draw a test chart, shrink it, upscale it with bicubic and ESPCN, and "
                                       "save the two beside the original.")
    parser.add_argument("-o", "--out", default="espcn_demo.png", help="output PNG, replaced if it exists")
    parser.add_argument("--scale", type=int, default=3, help="upscale factor")
    parser.add_argument("--model", default=None,
                        help="shipped name (espcn, espcn7) or a model file (default: the shipped espcn)")
    args = parser.parse_args(argv)
    return demo_command(args.out, args.scale, args.model, prog="npespcn demo")


def demo_command(out, scale, model, prog="npespcn upscale", tile=None) -> int:
    """The CLI face of :func:`run_demo`: prints the PSNRs, or one error line; returns the exit code
    (0, or 2 for a bad scale, a missing model or an unwritable output, as for the upscale CLI's usage
    errors). The demo picture is npespcn's own output and is replaced if it exists."""
    try:
        res = run_demo(out, scale, model, tile=tile)
    except (ValueError, TypeError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"test chart, x{res['scale']}, PSNR on Y: bicubic {res['bicubic_psnr']:.2f} dB, "
          f"ESPCN {res['espcn_psnr']:.2f} dB")
    print(f"wrote {res['out']} (bicubic | ESPCN | original)")
    return 0

