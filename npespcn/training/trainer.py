"""The trainer: epochs of shuffled, augmented patches; validation; best weights; resumable checkpoints.

One optimisation step on a batch ``x (B, 1, p, p)``, ``y (B, 1, p*r, p*r)`` (Y / 255)::

    pred = model.forward(x)                      (B, 1, p*r, p*r)
    loss = mean((pred - y)**2)                   MSE, as nn.MSELoss
    model.backward(2 (pred - y) / M)             fills model.grads (no input gradient)
    optimizer.step(model.grads)                  Adam or SGD; the last layer at 0.1 x the rate

With ``subpixel_target=True`` (the paper's trick) the target is stored inverse-shuffled,
``unshuffle(y) (B, r*r, p, p)``, and the loop runs every layer except the periodic shuffle: the loss is
the same mean over the same numbers and the gradient reaching the last convolution is the same array,
so the weights follow the same path (see ``tests/test_training.py``). On a CPU the shuffle and its
inverse are a small share of a step, and augmenting the inverse-shuffled target costs about as much as
skipping the shuffle saves, so the trick hardly changes the step time; it pays where the shuffle is
a large share of the work (GPUs, big outputs).

Every epoch ends with validation (PSNR/SSIM on Y, :mod:`npespcn.evaluation.protocol`'s protocol), the best
weights kept as ``best.npz``, the last as ``last.npz``, a checkpoint ``checkpoint.npz`` (parameters,
optimizer state, schedule, position, history), a JSON-lines log ``log.jsonl`` and a plot ``curves.png``,
all written atomically into the output folder. Checkpoints can also be written every N steps.

Reproducibility: the order and augmentation of epoch ``e`` are a pure function of ``(seed, e)``
(:func:`npespcn.training.patches.epoch_plan`), and the kernels are deterministic for a fixed thread count: every
numba ``prange`` loop writes its own outputs, the MSE is summed serially in one fixed order
(:mod:`npespcn.functional.loss`), and the only parallel reductions, the convolutions' weight and bias
gradients, deal chunk ``c`` to worker ``c % workers`` and add the workers' partial sums in worker order
(:mod:`npespcn.fast.chunked`). So a run killed at any moment and resumed from its last
checkpoint ends with bitwise the same weights as an uninterrupted run with the same seed on the same
machine and thread count. A different thread count splits those gradient sums differently, so its
weights may differ in the last bits.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .. import functional as F
from ..atomic import atomic_write
from ..evaluation.protocol import evaluate, load_rgb8
from ..image.io import list_images
from ..nn.model import ESPCN, PAPER_LAYERS, SEVEN_LAYERS, check_scale
from ..nn.optim import EMA, SGD, Adam, CosineLR, StepLR
from .patches import PatchSet, augment_batch, epoch_plan
from .plot import plot_curves
from .progress import Progress

CHECKPOINT = "checkpoint.npz"
BEST = "best.npz"
LAST = "last.npz"
LOG = "log.jsonl"
PLOT = "curves.png"


LOSS_NAMES = ("mse", "l1", "charbonnier", "l1-mse")
"""The training losses :class:`TrainConfig` takes."""


def loss_at(config, epoch: int) -> str:
    """The loss of ``epoch`` (0-based): ``config.loss``, or for "l1-mse" L1 in the first half, then MSE."""
    if config.loss == "l1-mse":
        return "l1" if epoch < config.epochs // 2 else "mse"
    return config.loss


class NonFiniteLoss(RuntimeError):
    """Raised (and reported) when a training loss is NaN or infinite."""

    @classmethod
    def at(cls, out: Path, loss: float, epoch: int, step: int) -> NonFiniteLoss:
        """The error for ``loss`` at ``epoch``, ``step`` (1-based) of the run in ``out``: the message names
        only the files that exist."""
        kept = [f"the best weights so far are in {out / BEST}" if (out / BEST).is_file() else None,
                f"the last good checkpoint is {out / CHECKPOINT} (resume from it with --resume)"
                if (out / CHECKPOINT).is_file() else None]
        kept = [k for k in kept if k] or ["nothing was saved yet (no epoch finished and no checkpoint was written)"]
        text = "; ".join(kept)
        return cls(f"non-finite training loss ({loss}) at epoch {epoch}, step {step}; stopped. "
                   f"{text[0].upper()}{text[1:]}; try a lower --lr")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint).

    ``arch`` is "paper" (5x5x64, 3x3x32, tanh) or "seven" (5x5x64, 3x3x64, 3 x 3x3x32, relu);
    ``layers``/``activation`` override it. ``schedule`` is "step" (x ``lr_gamma`` at ``lr_step`` epochs;
    ``lr_step = 0`` means at 80 % of the run, the ESPCN-pytorch recipe), "cosine" or "none".
    ``init_bias_mean`` starts the last layer's bias at the mean HR luma of the patches (else 0).
    ``loss_border`` leaves that many LR pixels on each side of a patch out of the loss. ``loss`` is
    "mse", "l1", "charbonnier", or "l1-mse": L1 for the first half of the epochs, then MSE (the PSNR
    it is judged by). ``reparam`` trains every hidden convolution as k×k + 1×1 (+ identity) branches
    (:class:`~npespcn.nn.reparam.RepConv2d`); the weights written are folded into the plain network.
    ``ema`` > 0 keeps an exponential moving average of the weights with that decay
    (:class:`~npespcn.nn.optim.EMA`): the average is validated and saved, the raw weights trained.
    """

    scale: int = 3
    arch: str = "paper"
    layers: list | None = None
    activation: str | None = None
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    last_lr_mult: float = 0.1
    schedule: str = "step"
    lr_step: int = 0
    lr_gamma: float = 0.1
    seed: int = 0
    patch_size: int = 17
    stride: int = 13
    augment: bool = True
    rescale: list = field(default_factory=lambda: [1.0])
    subpixel_target: bool = False
    checkpoint_every: int = 0
    init_bias_mean: bool = True
    loss_border: int = 0
    loss: str = "mse"
    reparam: bool = False
    ema: float = 0.0

    def __post_init__(self):
        if self.arch not in ("paper", "seven"):
            raise ValueError(f"arch must be 'paper' or 'seven', got {self.arch!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {LOSS_NAMES}, got {self.loss!r}")
        if self.schedule not in ("step", "cosine", "none"):
            raise ValueError(f"schedule must be 'step', 'cosine' or 'none', got {self.schedule!r}")
        self.scale = check_scale(self.scale)
        for name in ("epochs", "batch_size", "patch_size", "stride", "lr_step", "seed", "loss_border",
                     "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        for name in ("epochs", "batch_size", "patch_size", "stride"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("lr_step", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

        def number(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            return value

        if not number("lr") > 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not 0 < number("lr_gamma") <= 1:
            raise ValueError(f"lr_gamma must be a finite number in (0, 1], got {self.lr_gamma!r}")
        if not number("last_lr_mult") >= 0:
            raise ValueError(f"last_lr_mult must be a finite number >= 0, got {self.last_lr_mult!r}")
        if not 0 <= number("ema") < 1:
            raise ValueError(f"ema must be a finite number in [0, 1) (0: no moving average), got {self.ema!r}")
        if not 0 <= number("momentum") < 1:
            raise ValueError(f"momentum must be a finite number in [0, 1), got {self.momentum!r}")
        if not self.rescale or not all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                       and math.isfinite(f) and 0 < f <= 1 for f in self.rescale):
            raise ValueError(f"rescale factors must be finite numbers in (0, 1], got {self.rescale!r}")
        if self.loss_border < 0 or 2 * self.loss_border >= self.patch_size:
            raise ValueError(f"loss_border must be >= 0 and leave part of a {self.patch_size}-pixel patch, "
                             f"got {self.loss_border}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0: only at epoch ends), got {self.checkpoint_every}")
        self.rescale = [float(f) for f in self.rescale]
        if self.layers is not None:
            if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for pair in self.layers
                   for v in pair):
                raise ValueError(f"layers must be [kernel, filters] pairs of integers, got {self.layers!r}")
            self.layers = [[int(k), int(f)] for k, f in self.layers]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def build_model(self) -> ESPCN:
        default_layers, default_act = (PAPER_LAYERS, "tanh") if self.arch == "paper" else (SEVEN_LAYERS, "relu")
        return ESPCN(self.scale, 1, self.layers or default_layers, self.activation or default_act, seed=self.seed,
                     reparam=self.reparam)


# ------------------------------------------------------------------------------------------ one step
def _masked_loss(pred, target, b: int, loss_fn=F.mse_loss):
    """``loss_fn`` over ``pred[..., b:-b, b:-b]`` only, and its gradient (zero on the ``b``-pixel frame)."""
    if b == 0:
        return loss_fn(pred, target)
    if 2 * b >= min(pred.shape[-2:]):
        raise ValueError(f"loss border {b} leaves nothing of a {pred.shape[-2]}x{pred.shape[-1]} output")
    inner = (..., slice(b, -b), slice(b, -b))
    loss, d_inner = loss_fn(np.ascontiguousarray(pred[inner]), np.ascontiguousarray(target[inner]))
    d = np.zeros_like(pred)
    d[inner] = d_inner
    return loss, d


def forward_backward(model: ESPCN, x: np.ndarray, y: np.ndarray, subpixel_target: bool = False,
                     border: int = 0, loss: str = "mse") -> float:
    """Loss of one batch; fills ``model.grads``.

    Parameters
    ----------
    x : (B, 1, p, p) float32 LR patches
    y : (B, 1, p*r, p*r) HR patches, or with ``subpixel_target`` their inverse shuffle (B, r*r, p, p)
    border : int
        LR pixels on each side left out of the loss (``border * r`` HR pixels): the outputs there
        depend on the zero padding at the patch's edge, which a whole image mostly does not have.
    loss : a name of :data:`npespcn.functional.LOSSES` ("mse", "l1", "charbonnier")

    Returns
    -------
    loss : float, the loss's value
    """
    r = model.scale
    pred = model.forward(x, shuffle=not subpixel_target)     # the paper's trick skips the shuffle
    value, dpred = _masked_loss(pred, y, border if subpixel_target else border * r, F.LOSSES[loss])
    model.backward(dpred, input_grad=False)
    return value


# ------------------------------------------------------------------------------------------ validation
def load_validation_set(folder) -> list:
    """The HR images of ``folder`` for :func:`validate`: a list of ``(name, uint8 RGB (H, W, 3))``."""
    return [(p.name, load_rgb8(p)) for p in list_images(folder, nonempty=True)]


def validate(model: ESPCN, images: list) -> dict:
    """Mean PSNR (dB) and SSIM on Y of ``model`` over ``images`` (from :func:`load_validation_set`),
    exactly as ``npespcn evaluate`` computes them (:func:`npespcn.evaluation.protocol.evaluate`):
    ``{"psnr": float, "ssim": float}``."""
    res = evaluate(model, images, model.scale, bicubic=False)
    return {"psnr": res["psnr"], "ssim": res["ssim"]}


# ------------------------------------------------------------------------------------------ checkpoint
def save_checkpoint(path, model, optimizer, meta: dict, ema: EMA | None = None) -> None:
    """Write parameters, optimizer buffers, the moving average (if any) and ``meta`` (JSON) to one ``.npz``,
    atomically."""
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    for name, bufs in optimizer.state.items():
        for b, v in bufs.items():
            arrays[f"opt/{name}/{b}"] = v
    if ema is not None:
        arrays.update({f"ema/{k}": v for k, v in ema.average.items()})
        meta = dict(meta, ema_updates=ema.updates)
    meta = dict(meta, optimizer={"lr": optimizer.lr, "initial_lr": optimizer.initial_lr, "steps": optimizer.steps})
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **arrays)


_META_FIELDS = {"config": dict, "epoch": int, "step": int, "loss_sum": (int, float), "loss_count": int,
                "history": list, "best": dict, "elapsed": (int, float), "n_patches": int, "optimizer": dict}
MAX_META_BYTES = 1 << 24


def _damaged(path, reason: str) -> ValueError:
    """The one-line error for a checkpoint that cannot be resumed: which file, why, and what to do."""
    last = Path(path).parent / LAST
    keep = f"; the weights of its last finished epoch are in {last}" if last.is_file() else ""
    return ValueError(f"{path}: not a readable npespcn checkpoint ({reason}); it cannot be resumed: start the "
                      f"run over (without --resume, or with another --out){keep}")


def _check_meta(path, meta) -> dict:
    """``meta`` once it has the fields a resume reads, of the right types, and a valid config."""
    if not isinstance(meta, dict):
        raise _damaged(path, f"its record is a {type(meta).__name__}, not a mapping")
    for name, kind in _META_FIELDS.items():
        if name not in meta:
            raise _damaged(path, f"its record has no {name!r}")
        if not isinstance(meta[name], kind) or isinstance(meta[name], bool):
            raise _damaged(path, f"its record's {name!r} is {meta[name]!r:.60}")
    opt = meta["optimizer"]
    if not all(isinstance(opt.get(k), (int, float)) and not isinstance(opt.get(k), bool)
               for k in ("lr", "initial_lr", "steps")):
        raise _damaged(path, f"its optimizer record is {opt!r:.80}")
    if meta.get("sched_epoch") is not None and not isinstance(meta["sched_epoch"], int):
        raise _damaged(path, f"its record's 'sched_epoch' is {meta['sched_epoch']!r:.60}")
    try:
        TrainConfig.from_dict(meta["config"])
    except (ValueError, TypeError) as e:
        raise _damaged(path, f"its config is invalid: {e}") from None
    return meta


def _read_checkpoint(path, read):
    """``read(z)`` on the open checkpoint ``z``; ``FileNotFoundError`` if there is none, ``ValueError`` (one
    line: the file, the damage, what to do) if it is not a readable npespcn checkpoint."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (nothing to resume)")
    size = Path(path).stat().st_size
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "zip"):
                raise ValueError("not an .npz archive")
            for info in z.zip.infolist():               # save_checkpoint stores every member uncompressed
                if info.compress_type != 0 or info.file_size > size:
                    raise ValueError(f"member {info.filename!r} was not written by npespcn")
                if info.filename == "meta.npy" and info.file_size > MAX_META_BYTES:
                    raise ValueError(f"its record declares {info.file_size} bytes")
            return read(z)
    except Exception as e:  # noqa: BLE001 - a damaged zip makes zipfile, zlib and numpy raise nearly anything
        raise _damaged(path, f"{type(e).__name__}: {e}") from None


def read_checkpoint_meta(path) -> dict:
    """Only the JSON record of a checkpoint (config, position, history, ``info``), checked to hold what a
    resume reads."""
    return _check_meta(path, _read_checkpoint(path, lambda z: json.loads(str(z["meta"][()]))))


def load_checkpoint(path, model, optimizer, ema: EMA | None = None) -> dict:
    """Restore what :func:`save_checkpoint` wrote into ``model``, ``optimizer`` and ``ema``; return ``meta``.
    A damaged checkpoint is a one-line ``ValueError`` (see :func:`read_checkpoint_meta`)."""
    def read(z):
        params = {k[len("param/"):]: z[k] for k in z.files if k.startswith("param/")}
        average = {k[len("ema/"):]: z[k] for k in z.files if k.startswith("ema/")}
        state = {k: {} for k in optimizer.params}
        for k in z.files:
            if k.startswith("opt/"):
                name, buf = k[len("opt/"):].rsplit("/", 1)
                state.setdefault(name, {})[buf] = z[k]
        return json.loads(str(z["meta"][()])), params, state, average

    meta, params, state, average = _read_checkpoint(path, read)
    _check_meta(path, meta)
    try:
        model.load_params(params)
        if ema is not None:
            if not isinstance(meta.get("ema_updates"), int) or isinstance(meta.get("ema_updates"), bool):
                raise ValueError("it holds no moving average of the weights")
            ema.load_state(average, meta["ema_updates"])
        for name, bufs in state.items():
            for buf, v in bufs.items():
                if name in optimizer.params and v.shape != optimizer.params[name].shape:
                    raise ValueError(f"optimizer buffer {name}/{buf} has shape {v.shape}, the parameter "
                                     f"{optimizer.params[name].shape}")
        optimizer.load_state_dict({**meta["optimizer"], "state": state})
    except (ValueError, TypeError) as e:
        raise _damaged(path, str(e)) from None
    return meta


# ------------------------------------------------------------------------------------------ trainer
class Trainer:
    """Train ``config`` on ``patches``, validating on ``val_images``, writing into ``out_dir``.

    Parameters
    ----------
    config : TrainConfig
    patches : PatchSet (from :func:`npespcn.training.patches.build_patches`, same scale)
    val_images : list from :func:`load_validation_set`, or None (no validation; "best" = lowest loss)
    out_dir : folder for checkpoint, weights, log and plot (created)
    resume : continue from ``out_dir/checkpoint.npz`` (the config must match)
    stream : where the progress bar goes (default stderr); ``quiet`` silences it
    info : JSON-able dict kept in the checkpoint (the CLI stores the data and validation folders)
    """

    def __init__(self, config: TrainConfig, patches: PatchSet, val_images, out_dir, resume: bool = False,
                 stream=None, quiet: bool = False, val_name: str = "val", stop_after_steps: int | None = None,
                 info: dict | None = None):
        if patches.scale != config.scale:
            raise ValueError(f"patches were made for x{patches.scale}, the config trains x{config.scale}")
        self.cfg, self.patches, self.val_images = config, patches, val_images
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.stream, self.quiet, self.val_name, self.info = stream, quiet, val_name, dict(info or {})
        self.stop_after_steps = stop_after_steps        # tests: stop early as if killed
        self.model = config.build_model()
        if config.init_bias_mean:
            # Start the output at the mean HR luma instead of 0: with the last layer at 0.1 x the rate,
            # Adam would otherwise spend thousands of steps just moving this bias to ~0.45.
            self.model.params[f"{self.model.last_layer}.bias"][...] = np.float32(patches.hr.mean(dtype=np.float64))
        # the moving average (validated and saved instead of the raw weights) and the model that holds it
        self.ema = EMA(self.model.params, config.ema) if config.ema else None
        self.averaged = config.build_model() if self.ema else self.model
        lr_mult = self.model.lr_multipliers(config.last_lr_mult)
        if config.optimizer == "adam":
            self.opt = Adam(self.model.params, config.lr, lr_mult=lr_mult)
        else:
            self.opt = SGD(self.model.params, config.lr, momentum=config.momentum, lr_mult=lr_mult)
        if config.schedule == "step":
            self.sched = StepLR(self.opt, config.lr_step or max(1, int(round(0.8 * config.epochs))), config.lr_gamma)
        elif config.schedule == "cosine":
            self.sched = CosineLR(self.opt, config.epochs)
        else:
            self.sched = None
        self.target = patches.hr
        if config.subpixel_target:
            self.target = F.pixel_unshuffle(patches.hr, config.scale)
        self.epoch, self.step_in_epoch, self.loss_sum, self.loss_count = 0, 0, 0.0, 0
        self.history: list[dict] = []
        self.best = {"epoch": None, "psnr": None, "ssim": None, "loss": None}
        self.elapsed = 0.0
        if resume:
            self._resume()

    # -------------------------------------------------------------------------------------- state
    def _meta(self) -> dict:
        return {"config": self.cfg.to_dict(), "epoch": self.epoch, "step": self.step_in_epoch,
                "loss_sum": self.loss_sum, "loss_count": self.loss_count, "history": self.history,
                "best": self.best, "elapsed": self.elapsed, "n_patches": len(self.patches),
                "sched_epoch": self.sched.epoch if self.sched else None,
                "info": self.info}

    def _resume(self) -> None:
        meta = load_checkpoint(self.out / CHECKPOINT, self.model, self.opt, self.ema)
        saved = TrainConfig.from_dict(meta["config"])
        mine, theirs = self.cfg.to_dict(), saved.to_dict()
        # The number of epochs may grow (to extend a run); how often to checkpoint does not change the weights.
        diff = {k: (theirs[k], mine[k]) for k in mine
                if k not in ("epochs", "checkpoint_every") and mine[k] != theirs[k]}
        if diff:
            raise ValueError(f"--resume: the checkpoint in {self.out} was made with other settings "
                             f"(name: checkpoint vs now) {diff}")
        if meta["n_patches"] != len(self.patches):
            raise ValueError(f"--resume: the checkpoint saw {meta['n_patches']} patches, the data now gives "
                             f"{len(self.patches)}; use the same data")
        self.epoch, self.step_in_epoch = meta["epoch"], meta["step"]
        self.loss_sum, self.loss_count = meta["loss_sum"], meta["loss_count"]
        self.history, self.best, self.elapsed = meta["history"], meta["best"], meta["elapsed"]
        if self.sched is not None:
            # From the schedule rather than the saved rate: the same number unless --epochs grew.
            self.sched.epoch = meta["sched_epoch"]
            self.opt.lr = self.sched.lr_at(self.sched.epoch)
        self._write_log()

    def checkpoint(self) -> None:
        save_checkpoint(self.out / CHECKPOINT, self.model, self.opt, self._meta(), self.ema)

    def _write_log(self) -> None:
        with atomic_write(self.out / LOG, "w") as f:
            for row in self.history:
                f.write(json.dumps(row) + "\n")
        if self.history:
            series = {f"train loss ({self.cfg.loss} on Y/255)": [(h["epoch"], h["loss"]) for h in self.history]}
            if any(h.get("psnr") is not None for h in self.history):
                series[f"{self.val_name} PSNR on Y (dB)"] = [(h["epoch"], h["psnr"]) for h in self.history
                                                             if h.get("psnr") is not None]
            plot_curves(series, self.out / PLOT)

    # -------------------------------------------------------------------------------------- loop
    def run(self) -> dict:
        """Train until ``config.epochs``; returns the best record. Raises :class:`NonFiniteLoss`."""
        cfg, n = self.cfg, len(self.patches)
        steps_done = 0
        while self.epoch < cfg.epochs:
            order, ops, steps = epoch_plan(n, cfg.batch_size, cfg.seed, self.epoch, cfg.augment)
            val_seconds = [h["val_seconds"] for h in self.history if "val_seconds" in h]
            bar = Progress(n, f"epoch {self.epoch + 1}/{cfg.epochs}", stream=self.stream,
                           start=min(n, self.step_in_epoch * cfg.batch_size), disabled=self.quiet,
                           later=cfg.epochs - self.epoch - 1,
                           later_extra=sum(val_seconds[-3:]) / len(val_seconds[-3:]) if val_seconds else 0.0)
            t0 = epoch_t0 = time.perf_counter()
            while self.step_in_epoch < steps:
                idx = order[self.step_in_epoch * cfg.batch_size:(self.step_in_epoch + 1) * cfg.batch_size]
                x, y = self.patches.lr[idx], self.target[idx]
                if cfg.augment:
                    x, y = augment_batch(x, y, ops[idx], cfg.scale if cfg.subpixel_target else None)
                loss = forward_backward(self.model, x, y, cfg.subpixel_target, cfg.loss_border,
                                        loss_at(cfg, self.epoch))
                if not math.isfinite(loss):
                    bar.close()
                    raise NonFiniteLoss.at(self.out, loss, self.epoch + 1, self.step_in_epoch + 1)
                self.opt.step(self.model.grads)
                if self.ema is not None:
                    self.ema.update(self.model.params)
                self.loss_sum += loss * len(idx)
                self.loss_count += len(idx)
                self.step_in_epoch += 1
                steps_done += 1
                bar.update(len(idx), self.loss_sum / self.loss_count)
                if cfg.checkpoint_every and self.step_in_epoch % cfg.checkpoint_every == 0 \
                        and self.step_in_epoch < steps:
                    self.elapsed += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.checkpoint()
                if self.stop_after_steps is not None and steps_done >= self.stop_after_steps:
                    return self.best
            self.elapsed += time.perf_counter() - t0
            self._end_epoch(bar, time.perf_counter() - epoch_t0)
        return self.best

    def _end_epoch(self, bar, train_seconds) -> None:
        row = {"epoch": self.epoch + 1, "loss": self.loss_sum / max(1, self.loss_count), "lr": self.opt.lr}
        if self.ema is not None:
            self.averaged.load_params(self.ema.average)
        if self.sched is not None:
            self.sched.step()
        if self.val_images:
            tv = time.perf_counter()
            row.update(validate(self.averaged, self.val_images))
            row["val_seconds"] = round(time.perf_counter() - tv, 3)
            self.elapsed += row["val_seconds"]
            better = self.best["psnr"] is None or row["psnr"] > self.best["psnr"]
        else:
            better = self.best["loss"] is None or row["loss"] < self.best["loss"]
        row["train_seconds"] = round(train_seconds, 3)
        row["elapsed"] = round(self.elapsed, 3)
        if better:
            self.best = {"epoch": row["epoch"], "psnr": row.get("psnr"), "ssim": row.get("ssim"),
                         "loss": row["loss"]}
            self.averaged.save(self.out / BEST)
        self.averaged.save(self.out / LAST)
        self.history.append(row)
        self.epoch += 1
        self.step_in_epoch, self.loss_sum, self.loss_count = 0, 0.0, 0
        self.checkpoint()
        self._write_log()
        suffix = (f"{self.val_name} PSNR {row['psnr']:.3f} dB SSIM {row['ssim']:.4f}"
                  f"{'  (best)' if better else ''}") if "psnr" in row else ""
        bar.close(suffix)
