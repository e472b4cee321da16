"""The machinery that makes npespcn's kernels fast; a learner may skip this package.

:mod:`npespcn.functional` holds the maths: every kernel's readable NumPy reference and its fast twin,
with one signature and one cache. The fast twins call into this package, and only through the names
below (its one door). What lies behind it:

=================  =================================================================================
file               role
=================  =================================================================================
``chunked.py``     plans a convolution in chunks of rows and runs them on worker threads; picks im2col
                   + GEMM, kn2row, shifted taps or Winograd per layer shape (all equal to the reference within
                   floating-point rounding)
``compiled.py``    the training chunk loops as numba parallel regions; OpenMP thread start-up
``rows.py``        numba loops over one chunk's rows: im2col/col2im, bias + activation, kn2row adds
``blas.py``        NumPy's OpenBLAS through ctypes: single-threaded BLAS, ``cblas_?gemm`` pointers
``winograd.py``    Winograd F(m x m, 3x3) at inference: its matrices, and the transforms fused around
                   batched GEMMs on blocks of tiles aligned to the image
``vecmath.py``     the activation codes and the scalar formulas the compiled loops share (tanh, gelu)
``memory.py``      a cache-line prefetch for compiled loops (an LLVM intrinsic)
=================  =================================================================================
"""
from .chunked import (
           WINOGRAD,
           conv2d_chunked_backward,
           conv2d_chunked_forward,
           image_origin,
           inference_reach,
           out_array,
           run_concurrently,
           size_independent_is_bitwise,
           winograd_tile,
)
from .rows import col2im_rows, im2col_rows
from .vecmath import (
           ACT_CODES,
           GELU,
           IDENTITY,
           RELU,
           TANH,
           TANH_LIBM,
           activation_code,
           gelu,
           gelu_grad,
           tanh32,
)
from .winograd import POINTS, transform_weights, winograd_matrices

__all__ = ["conv2d_chunked_forward", "conv2d_chunked_backward", "out_array", "run_concurrently", "size_independent_is_bitwise", "im2col_rows", "col2im_rows",
           "WINOGRAD", "image_origin", "inference_reach", "winograd_tile", "POINTS", "winograd_matrices", "transform_weights",
           "ACT_CODES", "IDENTITY", "RELU", "TANH", "GELU", "TANH_LIBM", "activation_code", "gelu",
           "gelu_grad", "tanh32"]
