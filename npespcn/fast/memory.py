"""``prefetch(a, i)``: ask the CPU to bring the cache line of ``a[i]`` in, from numba-compiled code.

numba has no prefetch; this is LLVM's ``llvm.prefetch`` intrinsic (``prefetcht0`` on x86: a read, into
every cache level), emitted inline. It is a hint: it never faults, whatever the address, and changes
no value. The Winograd input transform issues it for the next channel's rows while it transforms the
current channel's: a tile row's six input rows of 1.3 KB, one set per channel 0.9 MB apart, are short
streams that the hardware prefetcher starts late (benchmarks/README.md).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, a, i):
    """Prefetch the cache line holding ``a[i]`` (``a`` a 1-D array, ``i`` an index; not bounds checked)."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and isinstance(i, types.Integer)):
        return None
    sig = types.void(a, types.intp)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False,
                                       boundscheck=False)
        byte = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        # read (0), locality 3 (keep in all levels), data cache (1)
        builder.call(fn, [builder.bitcast(ptr, byte), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
