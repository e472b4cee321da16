"""The architecture record every model file yields: the arguments of :class:`npespcn.ESPCN`.

``arch = {"scale": 3, "channels": 1, "layers": [[5, 64], [3, 32]], "activation": "tanh",
"output_activation": None}``. A file determines some fields from its weights' shapes
(:data:`FROM_SHAPES`); the caller may override the others (the activations) when loading.
"""
from __future__ import annotations

ARCH_FIELDS = ("scale", "channels", "layers", "activation", "output_activation")
FROM_SHAPES = ("scale", "channels", "layers")


def check_overrides(overrides: dict) -> None:
    """Raise ``TypeError`` naming any key of ``overrides`` that is not an architecture field."""
    unknown = sorted(set(overrides) - set(ARCH_FIELDS))
    if unknown:
        raise TypeError(f"unknown model override(s) {unknown}; expected any of {list(ARCH_FIELDS)}")


def apply_overrides(path, arch: dict, overrides: dict) -> dict:
    """``arch`` (read from the file ``path``) with ``overrides`` applied: a new dict.

    Scale, channels and layers must agree with the file (``ValueError`` naming what it holds otherwise);
    activations are replaced."""
    check_overrides(overrides)
    arch = dict(arch)
    for key, value in overrides.items():
        if key in FROM_SHAPES:
            same = ([list(map(int, l)) for l in value] == arch[key]) if key == "layers" else value == arch[key]
            if not same:
                raise ValueError(f"{path}: the file holds a model with {key}={arch[key]!r}, "
                                 f"but {key}={value!r} was asked for")
        else:
            arch[key] = value
    return arch
