"""``npespcn evaluate``: PSNR/SSIM of ESPCN next to bicubic on image folders.

::

    npespcn evaluate --data ../shared/datasets/Set5 ../shared/datasets/Set14 --scale 2 3 4
    npespcn evaluate --data Set5 --scale 3 --model runs/x3/best.npz --json
    npespcn evaluate --data Set5 --bicubic-only
    npespcn evaluate --data Set5 Set14 --scale 2 3 --model espcn espcn7 --report report/   # -> report/index.html

The protocol is :mod:`npespcn.evaluation.protocol`'s (Y channel, BT.601, ``scale`` pixels of border removed,
Pillow bicubic degradation). ``--model`` (one or several) defaults to the shipped ``espcn`` at each scale; a
model file counts at its own scale only. ``--report DIR`` also writes ``DIR/index.html`` with PNG crops
beside it (:mod:`npespcn.evaluation.report`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..evaluation import evaluate
from ..evaluation.report import plan_models, write_report
from ..image.io import list_images
from ..nn import check_scale, resolve_model
from .common import HelpFormatter, OneLineParser

PROG = "npespcn evaluate"


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="PSNR/SSIM (Y, BT.601) of ESPCN and bicubic.",
                      formatter_class=HelpFormatter)
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of high-resolution images")
    p.add_argument("--scale", nargs="+", type=int, default=None, metavar="R",
                   help="scales (default: 3, or the model file's)")
    p.add_argument("--model", nargs="+", default=None, metavar="MODEL",
                   help="shipped names (espcn, espcn7) or model files, one or several (default: the shipped espcn)")
    p.add_argument("--bicubic-only", action="store_true", help="score bicubic only (no model needed)")
    p.add_argument("--tile", type=int, default=None, help="low-resolution tile side (default: automatic)")
    p.add_argument("--per-image", action="store_true", help="also list every image")
    p.add_argument("--ensemble", action="store_true", help="score the self-ensemble over the 8 flips and rotations")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="also write DIR/index.html: tables, per-image PSNR and zoomed crops (PNG) of every model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report in --report DIR")
    return p


def table(results) -> str:
    """The results as an aligned text table (with a model column when they hold several models)."""
    several = len({res.get("model") for res in results}) > 1
    width = max([len(str(res.get("model"))) for res in results] + [5]) if several else 0
    model = (lambda res: f"{res.get('model')!s:<{width}} ") if several else (lambda res: "")
    head = (f"{'data':<12} {'scale':>5} {'model':<{width}} " if several else f"{'data':<12} {'scale':>5} ") + \
        f"{'images':>6}  {'bicubic PSNR / SSIM':>20}  {'ESPCN PSNR / SSIM':>20}"
    lines = [head, "-" * len(head)]

    def pair(p, s):
        return "-" if p is None else f"{p:.2f} / {s:.4f}"

    for res in results:
        lines.append(f"{res['data']:<12} {'x' + str(res['scale']):>5} {model(res)}{res['n']:>6}  "
                     f"{pair(res['bicubic_psnr'], res['bicubic_ssim']):>20}  {pair(res['psnr'], res['ssim']):>20}")
        for row in res.get("rows_to_print", []):
            pad = 7 + (width + 1 if several else 0)
            lines.append(f"  {row['name']:<16} {'':>{pad}}  {pair(row['bicubic_psnr'], row['bicubic_ssim']):>20}  "
                         f"{pair(row['psnr'], row['ssim']):>20}")
    return "\n".join(lines)


def _scales(args, models) -> list[int]:
    """``--scale``, else the model files' own scales, else 3."""
    if args.scale is not None:
        return [check_scale(s) for s in args.scale]
    if args.bicubic_only:
        return [3]
    return sorted({resolve_model(m, None).scale for m in models})


def run(args) -> int:
    for d in args.data:
        list_images(d, nonempty=True)                                         # fail early on a bad folder
    if args.bicubic_only and args.report:
        raise ValueError("--report compares models: it cannot be combined with --bicubic-only")
    names = args.model or [None]
    scales = _scales(args, names)
    if args.report:
        summary = write_report(args.report, names, args.data, scales, tile=args.tile, ensemble=args.ensemble,
                               overwrite=args.overwrite,
                               progress=None if args.json else (lambda line: print(line, file=sys.stderr)))
        results = [r for r in summary["results"] if r["model"] != "bicubic"]
        print(f"{PROG}: report written to {Path(args.report) / 'index.html'}", file=sys.stderr)
    else:
        # resolve every model before the long work starts: a missing file fails now, not after an hour
        plan = {s: [(None, None)] for s in scales} if args.bicubic_only else plan_models(names, scales)
        results = []
        for d in args.data:
            for s in scales:
                for label, net in plan[s]:
                    res = evaluate(net, d, s, tile=args.tile, ensemble=args.ensemble)
                    res["data"] = Path(d).name or str(d)
                    res["model"] = label
                    results.append(res)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for res in results:
            res["rows_to_print"] = res["per_image"] if args.per_image else []
        print(table(results))
    return 0


def main(argv=None) -> int:
    """Entry point: errors become one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, TypeError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
