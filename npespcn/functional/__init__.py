"""Pure functions on arrays: the kernels of npespcn (like PyTorch's ``nn.functional``).

Every kernel follows the CS231n convention: ``*_forward(...)`` returns ``(out, cache)`` and
``*_backward(dout, cache)`` returns the gradients. Each has a readable NumPy reference (``*_reference``)
and a fast twin (``*_numba``) with literally the same signature and the same cache, so a forward in one
backend may be followed by a backward in the other; ``backend="reference" | "numba" | None`` picks one
(None: the default, see :mod:`npespcn.functional.backend`). This package is the maths a learner reads;
the fast twins reach the machinery that makes them fast (threads, chunks of rows, BLAS pointers) only
through :mod:`npespcn.fast`.

In the reading order of docs/how-it-works.md (its sections in the last column):

=================  ===========================================  =======
file               concept                                      guide
=================  ===========================================  =======
``conv.py``        2-D convolution: the definition              1
``shuffle.py``     periodic shuffle and its inverse             2
``im2col.py``      unfold patches into columns, and fold back   4
``conv.py``        convolution as im2col + GEMM, its backward   4
``activation.py``  relu, tanh, gelu, identity, PReLU            5
``loss.py``        mean squared error, L1, Charbonnier          6
``winograd.py``    Winograd minimal filtering for 3x3 layers    12
``backend.py``     which of the two implementations runs        A
=================  ===========================================  =======
"""
from .activation import (ACTIVATIONS, activation_backward, activation_forward, check_activation, prelu_backward,
                         prelu_forward)
from .backend import BACKENDS, get_backend, set_backend, use_backend
from .conv import conv2d_backward, conv2d_forward
from .im2col import col2im, im2col
from .loss import LOSSES, charbonnier_loss, l1_loss, mse_loss
from .shuffle import (pixel_shuffle, pixel_shuffle_backward, pixel_shuffle_forward, pixel_unshuffle,
                      pixel_unshuffle_backward, pixel_unshuffle_forward)

__all__ = [
    "BACKENDS", "get_backend", "set_backend", "use_backend",
    "ACTIVATIONS", "activation_forward", "activation_backward", "check_activation",
    "prelu_forward", "prelu_backward",
    "conv2d_forward", "conv2d_backward", "im2col", "col2im", "mse_loss", "l1_loss", "charbonnier_loss", "LOSSES",
    "pixel_shuffle", "pixel_unshuffle", "pixel_shuffle_forward", "pixel_shuffle_backward",
    "pixel_unshuffle_forward", "pixel_unshuffle_backward",
]
