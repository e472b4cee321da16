"""The architecture record every model file yields: the arguments of :class:`npespcn.ESPCN`, and its limits.

``arch = {"scale": 3, "channels": 1, "layers": [[5, 64], [3, 32]], "activation": "tanh",
"output_activation": None}``. A file determines some fields from its weights' shapes
(:data:`FROM_SHAPES`); the caller may override the others (the activations) when loading.

**Limits.** A model file is untrusted input: a record of a few hundred bytes could otherwise ask for a
model of billions of parameters. :func:`check_arch` accepts only integers (no bools, no fractions) within

=================  ==========================================================================
scale              1 .. :data:`MAX_SCALE` (8)
channels           1 .. :data:`MAX_CHANNELS` (4)
layers             1 .. :data:`MAX_LAYERS` (16) hidden ``[kernel, filters]`` pairs: kernel odd in
                   1 .. :data:`MAX_KERNEL` (15), filters 1 .. :data:`MAX_FILTERS` (1024)
parameters         at most :data:`MAX_PARAMS` (50 M) in all, computed from the record
=================  ==========================================================================

and every reader calls it (and compares the arrays' declared shapes with :func:`param_shapes`) before it
decodes any array data. :func:`element_budget` bounds the array elements a file of ``n`` bytes may
produce (compressed or splatted data may not expand beyond it), so loading a file of ``n`` bytes needs
memory of a small multiple of ``max(n, 8 MB)``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

ARCH_FIELDS = ("scale", "channels", "layers", "activation", "output_activation")
FROM_SHAPES = ("scale", "channels", "layers")

MAX_SCALE = 8
MAX_CHANNELS = 4
MAX_LAYERS = 16
MAX_KERNEL = 15
MAX_FILTERS = 1024
MAX_PARAMS = 50_000_000
MIN_ELEMENT_BUDGET = 1 << 21
"""Array elements any file may produce (2 M: 8 MB of float32), whatever its size."""


class ArchError(ValueError):
    """An architecture record outside :func:`check_arch`'s limits or of the wrong types."""


def check_overrides(overrides: dict) -> None:
    """Raise ``TypeError`` naming any key of ``overrides`` that is not an architecture field."""
    unknown = sorted(set(overrides) - set(ARCH_FIELDS))
    if unknown:
        raise TypeError(f"unknown model override(s) {unknown}; expected any of {list(ARCH_FIELDS)}")


def _int_in(value, low: int, high: int, what: str) -> int:
    """``value`` as an int in ``low..high``; ``ArchError`` for bools, fractions, strings and out-of-range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArchError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ArchError(f"{what} must be in {low}..{high}, got {value}")
    return int(value)


def check_arch(arch, path=None) -> dict:
    """The architecture record ``arch`` checked against the limits of the module docstring, as a new dict
    of plain Python values (``layers`` a list of ``[kernel, filters]`` lists).

    Raises :class:`ArchError` (a ``ValueError``) naming the file ``path`` and the field. The activation
    names are checked for type and length only; :class:`npespcn.ESPCN` checks that they exist.
    """
    where = f"{path}: " if path is not None else ""
    try:
        if not isinstance(arch, dict):
            raise ArchError(f"the architecture record is a {type(arch).__name__}, not a mapping")
        missing = [k for k in ARCH_FIELDS if k not in arch]
        if missing:
            raise ArchError(f"the architecture record lacks {missing}")
        scale = _int_in(arch["scale"], 1, MAX_SCALE, "scale")
        channels = _int_in(arch["channels"], 1, MAX_CHANNELS, "channels")
        layers = arch["layers"]
        if isinstance(layers, (str, bytes, dict)) or not hasattr(layers, "__len__"):
            raise ArchError(f"layers must be a list of [kernel, filters] pairs, got {layers!r:.80}")
        if not 1 <= len(layers) <= MAX_LAYERS:
            raise ArchError(f"layers must hold 1..{MAX_LAYERS} [kernel, filters] pairs, got {len(layers)}")
        out_layers = []
        for i, pair in enumerate(layers, start=1):
            if isinstance(pair, (str, bytes, dict)) or not hasattr(pair, "__len__") or len(pair) != 2:
                raise ArchError(f"layer {i} must be a [kernel, filters] pair, got {pair!r:.80}")
            k = _int_in(pair[0], 1, MAX_KERNEL, f"the kernel of layer {i}")
            if k % 2 == 0:
                raise ArchError(f"the kernel of layer {i} must be odd, got {k}")
            out_layers.append([k, _int_in(pair[1], 1, MAX_FILTERS, f"the filters of layer {i}")])
        for key in ("activation", "output_activation"):
            value = arch[key]
            if not (isinstance(value, str) and 0 < len(value) <= 32) and not (key == "output_activation"
                                                                                and value is None):
                raise ArchError(f"{key} must be an activation name, got {value!r:.80}")
        out = {"scale": scale, "channels": channels, "layers": out_layers, "activation": arch["activation"],
               "output_activation": arch["output_activation"]}
        n = num_params(out)
        if n > MAX_PARAMS:
            raise ArchError(f"the architecture has {n} parameters, more than the {MAX_PARAMS} an ESPCN file "
                            f"may hold here")
    except ArchError as e:
        raise ArchError(f"{where}{e}") from None
    return out


def param_shapes(arch: dict) -> dict[str, tuple]:
    """``{"conv1.weight": (f1, C, k1, k1), "conv1.bias": (f1,), ...}``: the parameters :class:`npespcn.ESPCN`
    has for ``arch`` (a checked record), in its order; ``prelu<i>.weight`` (f_i,) with the PReLU activation."""
    shapes, c = {}, arch["channels"]
    for i, (k, f) in enumerate(arch["layers"], start=1):
        shapes[f"conv{i}.weight"], shapes[f"conv{i}.bias"] = (f, c, k, k), (f,)
        if arch["activation"] == "prelu":
            shapes[f"prelu{i}.weight"] = (f,)
        c = f
    last, out = len(arch["layers"]) + 1, arch["channels"] * arch["scale"] ** 2
    shapes[f"conv{last}.weight"], shapes[f"conv{last}.bias"] = (out, c, 3, 3), (out,)
    return shapes


def num_params(arch: dict) -> int:
    """The number of parameters of ``arch`` (a checked record)."""
    return sum(math.prod(s) for s in param_shapes(arch).values())


def element_budget(file_size: int) -> int:
    """Array elements a file of ``file_size`` bytes may produce: ``max(2 M, file_size // 2)``, so that
    compressed or splatted data never expands beyond a small multiple of the bytes actually present."""
    return max(MIN_ELEMENT_BUDGET, int(file_size) // 2)


def apply_overrides(path, arch: dict, overrides: dict) -> dict:
    """``arch`` (read from the file ``path``) with ``overrides`` applied: a new dict.

    Scale, channels and layers must agree with the file (``ValueError`` naming what it holds otherwise);
    activations are replaced."""
    check_overrides(overrides)
    arch = dict(arch)
    for key, value in overrides.items():
        if key in FROM_SHAPES:
            try:
                same = ([list(map(int, p)) for p in value] == arch[key]) if key == "layers" else value == arch[key]
            except (TypeError, ValueError):
                same = False
            if not same:
                raise ValueError(f"{path}: the file holds a model with {key}={arch[key]!r}, "
                                 f"but {key}={value!r} was asked for")
        else:
            arch[key] = value
    return arch


def check_exportable(arch: dict, params: dict, hidden: tuple, outputs: tuple, what: str) -> dict:
    """``arch`` checked, and ``params`` checked against it, for a writer that supports the hidden
    activations ``hidden`` and the output activations ``outputs`` (``None`` for none); ``ValueError``
    naming what the format cannot express otherwise."""
    arch = check_arch(arch)
    if arch["activation"] not in hidden:
        raise ValueError(f"{what} export supports the hidden activations {', '.join(hidden)}; this model uses "
                         f"{arch['activation']!r}")
    out_act = None if arch["output_activation"] in (None, "identity") else arch["output_activation"]
    if out_act not in outputs:
        raise ValueError(f"{what} export supports the output activations "
                         f"{', '.join(str(o) for o in outputs)}; this model uses {out_act!r}")
    shapes = param_shapes(arch)
    if set(params) != set(shapes):
        raise ValueError(f"parameters {sorted(params)} do not match the architecture's {sorted(shapes)}")
    for name, shape in shapes.items():
        if tuple(np.shape(params[name])) != shape:
            raise ValueError(f"{name}: shape {np.shape(params[name])}, the architecture needs {shape}")
        if not np.all(np.isfinite(params[name])):
            raise ValueError(f"{name}: parameters contain NaN or infinity")
    return {**arch, "output_activation": out_act}
