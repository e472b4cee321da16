"""ESPCN: convolutions in low-resolution space, then a periodic shuffle to the high-resolution image.

For an upscale factor ``r``, ``C`` image channels and hidden layers ``(k1, f1), ..., (kL, fL)``::

    x      (N, C, H, W)             low-resolution input
    h1     (N, f1, H, W)            act(conv_k1(x))
    ...
    hL     (N, fL, H, W)            act(conv_kL(h_{L-1}))
    z      (N, C*r*r, H, W)         conv_3(hL)                  the r*r sub-pixel channels, no activation
    y      (N, C, r*H, r*W)         out_act(PS(z))              periodic shuffle, optional output activation

The model is just that list of layers (``model.layers``); ``forward`` runs it front to back and
``backward`` runs it back to front, each layer using what its own forward cached. Two things make
:meth:`ESPCN.forward` and :meth:`ESPCN.backward` longer than that loop, and change no number:

* fusion: a convolution followed by an ``Activation`` in ``FUSED_TRAIN_ACTIVATIONS`` (identity, relu, tanh)
  runs as one call, :func:`~npespcn.functional.conv.conv2d_act_train_forward`, which keeps only the output
  (these derivatives are functions of it: ``1 - y**2``, ``y > 0``); the ``Activation`` layer object itself is
  then not called in training, with either backend. :meth:`ESPCN.infer` fuses every activation likewise.
* buffer reuse: each training step writes its intermediate arrays into the previous step's
  (:attr:`ESPCN.buffers`), as a caching allocator would; :meth:`ESPCN.infer` writes its convolutions'
  results into two arrays that it keeps between calls, taking turns.

The plain chain, with neither, is ``forward`` / ``backward`` of ``examples/00_espcn_in_50_lines.py``, which
the tests check against this class (docs/how-it-works.md, sections 1 and 6).
"""
from __future__ import annotations

import math

import numpy as np

from ..formats import apply_overrides, check_arch, check_overrides, read_model_file, save_npz
from ..functional import ACTIVATIONS, check_activation
from ..functional.conv import FUSED_TRAIN_ACTIVATIONS
from ..functional.im2col import check_kernel
from .layers import Activation, Conv2d, PixelShuffle, PReLU
from .reparam import RepConv2d

PAPER_LAYERS = ((5, 64), (3, 32))
SEVEN_LAYERS = ((5, 64), (3, 64), (3, 32), (3, 32), (3, 32))


def check_scale(scale) -> int:
    """Return ``scale`` as an int >= 1, or raise ``ValueError`` / ``TypeError`` saying what was expected."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer, float, np.floating)):
        raise TypeError(f"scale must be a positive integer such as 2, 3 or 4, got {type(scale).__name__} "
                        f"{scale!r}")
    if isinstance(scale, (float, np.floating)) and not float(scale).is_integer():
        raise ValueError(f"scale must be a positive integer such as 2, 3 or 4, got {scale!r}")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer such as 2, 3 or 4, got {scale!r}")
    return int(scale)


def _integer(v, what: str, layers) -> int:
    """``v`` as an int: integers and integral floats; bools, fractions and other types raise ValueError."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)) \
            or isinstance(v, (float, np.floating)) and not float(v).is_integer():
        raise ValueError(f"every {what} must be an integer, got {v!r} in {layers!r}")
    return int(v)


def _check_layers(layers):
    try:
        pairs = [tuple(pair) for pair in layers]
    except TypeError:
        raise ValueError(f"layers must be a sequence of (kernel, filters) pairs, got {layers!r}") from None
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"layers must be a sequence of (kernel, filters) pairs, got {layers!r}")
    out = tuple((_integer(k, "kernel size", layers), _integer(f, "filter count", layers)) for k, f in pairs)
    for k, f in out:
        check_kernel(k)
        if f < 1:
            raise ValueError(f"every filter count must be positive, got {f} in {layers!r}")
    return out


class ESPCN:
    """Efficient sub-pixel convolutional network (Shi et al., CVPR 2016).

    Parameters
    ----------
    scale : int
        Upscale factor ``r`` (>= 1).
    channels : int
        Image channels ``C``: 1 for a Y-channel model, 3 for RGB.
    layers : sequence of (kernel, filters)
        The hidden convolutions. The last 3x3 convolution to ``C*r*r`` channels and the shuffle are implied.
    activation : {"tanh", "relu", "gelu", "prelu", "identity"}
        Activation after every hidden convolution.
    output_activation : None or {"tanh", "relu", "gelu", "identity"}
        Applied after the shuffle (the published TF-ESPCN models end in tanh).
    seed : int
        Seed of the initialisation: for hidden layers He-normal in fan-out mode, std
        ``sqrt(2 / (filters * k * k))`` with ``filters`` the layer's *output* channels (He et al. 2015 derive
        it from the backward pass; PyTorch's ``kaiming_normal_`` defaults to fan-in,
        ``sqrt(2 / (in * k * k))``);
        N(0, 0.001²) for the last layer (SRCNN's init); zero biases. This is the initialisation of the
        ESPCN-pytorch reference implementation (github.com/yjn870/ESPCN-pytorch, ``models.py``).
    dtype : float32 (default) or float64 (for gradient checks)
    reparam : bool
        Train every hidden convolution as a :class:`~npespcn.nn.reparam.RepConv2d` (k×k + 1×1 +
        identity branches); :meth:`folded` and :meth:`save` turn it back into the plain network, which
        :attr:`arch` describes.
    """

    def __init__(self, scale: int = 3, channels: int = 1, layers=PAPER_LAYERS, activation: str = "tanh",
                 output_activation: str | None = None, seed: int = 0, dtype=np.float32, reparam: bool = False):
        scale = check_scale(scale)
        if not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        self.scale, self.channels = int(scale), int(channels)
        self.hidden = _check_layers(layers)
        self.activation = check_activation(activation, allow_prelu=True)
        self.output_activation = (None if output_activation is None
                                  else check_activation(output_activation, what="output_activation"))
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")

        # The model is a readable list of (name, layer) pairs.
        self.named_layers: list[tuple[str, object]] = []
        c_in = self.channels
        for i, (k, f) in enumerate(self.hidden, start=1):
            self.named_layers.append((f"conv{i}", (RepConv2d if reparam else Conv2d)(c_in, f, k, self.dtype)))
            if self.activation == "prelu":
                self.named_layers.append((f"prelu{i}", PReLU(f, dtype=self.dtype)))
            else:
                self.named_layers.append((f"act{i}", Activation(self.activation)))
            c_in = f
        last = len(self.hidden) + 1
        self.named_layers.append((f"conv{last}", Conv2d(c_in, self.channels * self.scale ** 2, 3, self.dtype)))
        self.named_layers.append(("shuffle", PixelShuffle(self.scale)))
        if self.output_activation not in (None, "identity"):
            self.named_layers.append(("output_act", Activation(self.output_activation)))
        self.init_weights(seed)
        self.buffers: dict = {}
        """Training's intermediate arrays, kept to be written again at the next step of the same shape."""
        self._infer_spare: list = []        # infer's two flat arrays between calls, when no call holds them
        self._trained: list = []            # the layers the last forward ran (a fused activation: its conv)
        self._in_shapes: list = []          # the input shape of each of them
        self._out_shape = None              # the last training forward's output shape; None: no backward pending

    # ---------------------------------------------------------------------------------- construction
    @classmethod
    def paper(cls, scale: int = 3, channels: int = 1, **kw) -> "ESPCN":
        """The paper's model: 5x5x64, 3x3x32, tanh."""
        return cls(scale, channels, PAPER_LAYERS, kw.pop("activation", "tanh"), **kw)

    @classmethod
    def seven(cls, scale: int = 3, channels: int = 1, **kw) -> "ESPCN":
        """The seven-layer variant: 5x5x64, 3x3x64, 3x3x32, 3x3x32, 3x3x32, relu."""
        return cls(scale, channels, SEVEN_LAYERS, kw.pop("activation", "relu"), **kw)

    @property
    def arch(self) -> dict:
        """Everything needed to rebuild this model: ``ESPCN(**model.arch)``."""
        return {"scale": self.scale, "channels": self.channels, "layers": [list(l) for l in self.hidden],
                "activation": self.activation, "output_activation": self.output_activation}

    def init_weights(self, seed: int = 0) -> None:
        """Re-initialise every parameter from ``seed`` (see the class docstring)."""
        rng = np.random.default_rng(seed)
        convs = [layer for _, layer in self.named_layers if isinstance(layer, (Conv2d, RepConv2d))]
        for i, conv in enumerate(convs):
            w = conv.params["weight"]
            if i < len(convs) - 1:
                std = math.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))
            else:
                std = 0.001
            w[...] = rng.normal(0.0, std, size=w.shape)
            for name in ("bias", "weight1", "bias1"):       # a RepConv2d's side branches start at 0
                if name in conv.params:
                    conv.params[name][...] = 0
        for _, layer in self.named_layers:
            if isinstance(layer, PReLU):
                layer.params["weight"][...] = 0.25

    @property
    def layers(self) -> list:
        """The layers, in order."""
        return [layer for _, layer in self.named_layers]

    @property
    def params(self) -> dict[str, np.ndarray]:
        """``{"conv1.weight": array (out, in, k, k), "conv1.bias": array (out,), ...}``, the live arrays."""
        return {f"{name}.{p}": arr for name, layer in self.named_layers for p, arr in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Same keys as :attr:`params`; filled by :meth:`backward`."""
        return {f"{name}.{p}": arr for name, layer in self.named_layers for p, arr in layer.grads.items()}

    @property
    def last_layer(self) -> str:
        """Name of the last convolution (``"conv3"`` for the paper model)."""
        return f"conv{len(self.hidden) + 1}"

    def lr_multipliers(self, last: float = 0.1) -> dict[str, float]:
        """Per-parameter learning-rate multipliers that train the last layer at ``last`` x the base rate
        (``Adam(..., lr_mult=model.lr_multipliers(0.1))``: the last layer at a tenth, as SRCNN and the
        ESPCN-pytorch reference implementation train it; Shi et al. do not)."""
        return {f"{self.last_layer}.weight": last, f"{self.last_layer}.bias": last}

    @property
    def receptive_radius(self) -> int:
        """How many low-resolution pixels on each side influence one output block: sum of (k - 1) / 2."""
        return sum((k - 1) // 2 for k, _ in self.hidden) + 1

    def num_params(self) -> int:
        return sum(a.size for a in self.params.values())

    def macs_per_pixel(self) -> int:
        """Multiply-adds per low-resolution pixel of the forward pass."""
        c, total = self.channels, 0
        for k, f in self.hidden:
            total, c = total + k * k * c * f, f
        return total + 9 * c * self.channels * self.scale ** 2

    def load_params(self, params: dict) -> "ESPCN":
        """Copy ``params`` (same keys and shapes as :attr:`params`) into the model; returns self."""
        mine = self.params
        if set(params) != set(mine):
            raise ValueError(f"parameter names differ: missing {sorted(set(mine) - set(params))}, "
                             f"unexpected {sorted(set(params) - set(mine))}")
        for k, v in params.items():
            v = np.asarray(v)
            if v.dtype.kind != "f":
                raise ValueError(f"{k}: parameters must be floating-point numbers, got dtype {v.dtype}")
            if v.shape != mine[k].shape:
                raise ValueError(f"{k}: expected shape {mine[k].shape}, got {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{k}: parameters contain NaN or infinity")
            mine[k][...] = v
        return self

    # ---------------------------------------------------------------------------------- compute
    def _check_input(self, x):
        if not isinstance(x, np.ndarray):
            raise ValueError(f"ESPCN expects a NumPy array (N, C, H, W), got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"ESPCN expects a 4-D (N, C, H, W) array, got {x.ndim}-D shape {x.shape}")
        if x.shape[1] != self.channels:
            raise ValueError(f"this ESPCN expects {self.channels} channel(s) (N, {self.channels}, H, W), "
                             f"got {x.shape[1]} (shape {x.shape})")
        if x.size == 0:
            raise ValueError(f"ESPCN expects a non-empty array, got shape {x.shape}")
        if x.dtype.kind not in "fiu":
            raise ValueError(f"ESPCN expects real numbers, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if not np.isfinite(x).all():
            raise ValueError("ESPCN input contains NaN or infinity; expected finite values")
        return x

    def forward(self, x: np.ndarray, shuffle: bool = True) -> np.ndarray:
        """Run the model and keep what :meth:`backward` needs.

        Parameters
        ----------
        x : ndarray (N, C, H, W), cast to the model's dtype
        shuffle : bool
            False skips the periodic shuffle (the paper's training trick: compare the sub-pixel channels
            with the inverse-shuffled target; every other layer is a convolution or element-wise, so the
            loss and all gradients are unchanged). :meth:`backward` then skips it too.

        Returns
        -------
        y : ndarray (N, C, r*H, r*W), or (N, C*r*r, H, W) with ``shuffle=False``

        Each convolution followed by an identity, relu or tanh ``Activation`` runs as one fused call that
        keeps only its output (:func:`~npespcn.functional.conv.conv2d_act_train_forward`), whichever the
        backend: that ``Activation`` layer's own ``forward`` and ``backward`` are not called. The numbers
        are those of running the two layers one after the other.

        The convolutions' intermediate results (and, in :meth:`backward`, the gradients passed between
        layers) are written into the arrays of the previous step when the shapes agree, as a caching
        allocator would (fresh arrays would pay their page faults every step); see :attr:`buffers`. The
        returned output and input gradient are always new arrays.
        """
        out = self._check_input(x)
        layers = [layer for layer in self.layers if shuffle or not isinstance(layer, PixelShuffle)]
        steps = list(self._fusions(layers, FUSED_TRAIN_ACTIVATIONS))
        self._trained, self._in_shapes = [], []
        for i, (layer, act) in enumerate(steps):
            self._in_shapes.append(out.shape)
            if isinstance(layer, Conv2d):
                last = i == len(steps) - 1                  # its result is returned: never reused
                shape = out.shape[:1] + (layer.out_channels,) + out.shape[2:]
                out = layer.forward(out, True, act, out=None if last else self._reusable(("out", i), shape))
                if not last:
                    self.buffers[("out", i)] = out
            else:
                out = layer.forward(out, train=True)
            self._trained.append(layer)
        self._out_shape = out.shape
        return out

    def _reusable(self, key, shape):
        """The array kept under ``key`` if it has ``shape`` and the model's dtype, else None."""
        buf = self.buffers.get(key)
        return buf if buf is not None and buf.shape == shape and buf.dtype == self.dtype else None

    @staticmethod
    def _fusions(layers, fusable):
        """``(layer, activation name or None)`` in order: a Conv2d followed by an Activation in ``fusable``
        comes as one pair (the Activation is run inside the convolution's pass), everything else alone."""
        i = 0
        while i < len(layers):
            layer, after = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, Conv2d) and isinstance(after, Activation) and after.name in fusable:
                yield layer, after.name
                i += 2
            else:
                yield layer, None
                i += 1

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate ``dy = dL/dy`` (the shape :meth:`forward` returned); fills :attr:`grads` and
        returns ``dL/dx``. Training needs only the parameters' gradients: ``input_grad=False`` skips
        the first convolution's input gradient (a GEMM and a col2im) and returns None."""
        if self._out_shape is None:
            raise RuntimeError("ESPCN.backward called without a forward first")
        dy = np.asarray(dy)
        if dy.shape != self._out_shape:
            raise ValueError(f"backward expects dy of the output's shape {self._out_shape}, got {dy.shape}")
        d = dy.astype(self.dtype, copy=False)
        for i in range(len(self._trained) - 1, -1, -1):
            layer = self._trained[i]
            if not isinstance(layer, Conv2d):
                d = layer.backward(d)
            elif i == 0:                                    # its dx is returned: never reused
                d = layer.backward(d, input_grad=input_grad)
            else:
                d = layer.backward(d, out=self._reusable(("dx", i), self._in_shapes[i]))
                self.buffers[("dx", i)] = d
        self._out_shape = None
        return d if input_grad else None

    INFER_KEEP_BYTES = 256 << 20
    """:meth:`infer` keeps its two arrays for the next call when together they hold at most this many bytes."""

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Forward without keeping caches (inference: less memory).

        A convolution followed by an activation runs as one fused kernel (:meth:`Conv2d.forward`):
        the same numbers as :meth:`forward`, one pass less over memory. The convolutions write their
        results into two flat arrays by turns (each layer reads the other one), which are kept for the
        next call (up to :attr:`INFER_KEEP_BYTES`): a fresh array for every layer had the kernel zero
        its pages at every call, 14 % of a 640x360 frame's time (benchmarks/README.md). Calls from
        several threads at once each get arrays of their own.
        """
        out = self._check_input(x)
        steps = list(self._fusions(self.layers, ACTIVATIONS))
        keep = [type(layer) is Conv2d and i < len(steps) - 1 for i, (layer, _) in enumerate(steps)]
        sizes = [out.shape[0] * layer.out_channels * out.shape[2] * out.shape[3]    # the kept results, in turn
                 for (layer, _), kept in zip(steps, keep) if kept]
        need = [max(sizes[0::2], default=0), max(sizes[1::2], default=0)]
        try:
            spare = self._infer_spare.pop()             # atomic: a concurrent call cannot take it too
        except IndexError:
            spare = [np.empty(0, self.dtype)] * 2
        flats = [a if a.size >= n and a.dtype == self.dtype else np.empty(n, self.dtype) for a, n in zip(spare, need)]
        del spare                                       # an array too small is freed now, not after the call
        turn = 0
        for (layer, act), kept in zip(steps, keep):
            if kept:                                    # a convolution whose result the next layer reads
                shape = out.shape[:1] + (layer.out_channels,) + out.shape[2:]
                out = layer.forward(out, False, act, out=flats[turn][:math.prod(shape)].reshape(shape))
                turn = 1 - turn
            else:
                out = layer.forward(out, False) if act is None else layer.forward(out, False, act)
        if any(np.may_share_memory(out, a) for a in flats):  # a last layer that returned its input
            out = out.copy()
        if sum(a.nbytes for a in flats) <= self.INFER_KEEP_BYTES and not self._infer_spare:
            self._infer_spare.append(flats)
        return out

    __call__ = infer

    def __getstate__(self):
        """For pickling (a Dask worker's copy of the model): everything but the scratch arrays kept between
        calls (:attr:`buffers`, :meth:`infer`'s), which a copy makes anew when it needs them."""
        state = self.__dict__.copy()
        state["buffers"], state["_infer_spare"] = {}, []
        return state

    def __repr__(self):
        body = ",\n  ".join(f"{name}: {layer!r}" for name, layer in self.named_layers)
        return f"ESPCN(scale={self.scale}, channels={self.channels}) [\n  {body}\n]"

    # ---------------------------------------------------------------------------------- files
    def folded(self) -> "ESPCN":
        """This model with every :class:`~npespcn.nn.reparam.RepConv2d` folded into its plain
        convolution (the same outputs, to float rounding); ``self`` when there is none."""
        if not any(isinstance(layer, RepConv2d) for layer in self.layers):
            return self
        plain = ESPCN(dtype=self.dtype, **self.arch)
        for (name, layer), (_, target) in zip(self.named_layers, plain.named_layers):
            source = layer.fold() if isinstance(layer, RepConv2d) else layer
            for key, value in source.params.items():
                target.params[key][...] = value
        return plain

    def save(self, path, overwrite: bool = True) -> None:
        """Write npespcn's ``.npz`` (parameters + architecture), atomically; see :mod:`npespcn.formats.npz`.
        A re-parameterised model is saved folded: files hold plain ESPCNs. ``overwrite=False``:
        ``FileExistsError`` rather than replace an existing ``path``."""
        save_npz(self.folded(), path, overwrite=overwrite)


def load_model(path, **overrides) -> ESPCN:
    """Load an ESPCN from a model file, whatever its format (see :mod:`npespcn.formats`).

    Args:
        path: str or Path of an npespcn ``.npz``, a PyTorch ``.pth`` state dict, a TensorFlow ``.pb`` or an
            ONNX ``.onnx`` ESPCN graph (see :mod:`npespcn.formats.onnx` for the layouts read), recognised by
            content.
        **overrides: architecture fields (``scale, channels, layers, activation, output_activation``).
            Scale, channels and layers must agree with the file; the activations replace what the
            file holds or implies (a ``.pth`` stores none: ESPCN-pytorch's tanh is assumed).

    Returns:
        A float32 :class:`ESPCN` with the file's weights, in npespcn's layout.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a model file npespcn reads, or damaged, or not an ESPCN, or an architecture
            outside :func:`npespcn.formats.arch.check_arch`'s limits (the message says which). The
            architecture is checked before any model is built and every reader compares the arrays'
            declared shapes with it before decoding them, so a small hostile file cannot make this
            allocate much more than the file's size.
        TypeError: an unknown override.

    Examples:
        >>> model = load_model("weights/espcn_x3.npz")            # doctest: +SKIP
        >>> model.scale
        3
    """
    check_overrides(overrides)
    _, arch, params = read_model_file(path)
    return ESPCN(**check_arch(apply_overrides(path, arch, overrides), path)).load_params(params)
