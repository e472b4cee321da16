"""PyTorch ``state_dict`` files (``torch.save``, zip format), read without torch and without running code.

A ``.pth`` written by ``torch.save`` (PyTorch >= 1.6) is a zip archive::

    <name>/data.pkl          the pickled object (here an OrderedDict name -> tensor)
    <name>/data/0, 1, ...    raw bytes of every storage (little-endian unless <name>/byteorder says "big")
    <name>/version, ...      bookkeeping

Inside ``data.pkl`` a tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and a
storage is a *persistent id* ``("storage", torch.FloatStorage, "0", "cpu", numel)`` that names the file
``data/0``.

**Safety.** Python's ``pickle`` can call any importable function, so loading an untrusted ``.pth`` with it can
run arbitrary code. This module never imports ``pickle``'s loader: :class:`SafeUnpickler` is a small stack
machine that understands only the opcodes a tensor state dict uses (protocols 2 to 5) and resolves only the
globals in :data:`ALLOWED_GLOBALS`, each mapped to a function of this module that builds plain Python or
NumPy values. Any other global (``os system``, ``builtins eval``, ...) is refused with ``ValueError`` the moment
the ``GLOBAL`` opcode is read, before anything could be called. Every opcode consumes at least one byte and
every length is checked against the bytes present, so a corrupted file cannot hang or over-read.

**Memory.** ``data.pkl`` is read only when it declares at most :data:`MAX_PICKLE_BYTES` and the machine
runs at most :data:`MAX_PICKLE_OPS` opcodes. Unpickling reads no storage: tensors are records of
``(storage, offset, size, stride)``, so the shapes (and through ``check``, the architecture) are known and
checked first; then the storages the tensors use are read, once their element counts passed the budget
of :func:`npespcn.formats.arch.element_budget` and their entries declare the bytes the pickle implies,
in bounded chunks (:mod:`npespcn.formats.ziparchive`).

**ESPCN-pytorch layout** (``yjn870/ESPCN-pytorch``)::

    first_part.0  Conv2d(C, 64, 5, padding=2)      first_part.1  Tanh
    first_part.2  Conv2d(64, 32, 3, padding=1)     first_part.3  Tanh
    last_part.0   Conv2d(32, C*r*r, 3, padding=1)  last_part.1   PixelShuffle(r)      (no output activation)

The weights are already ``(out, in, kH, kW)`` and PixelShuffle uses npespcn's channel order. The file stores no
activation: it defaults to ESPCN-pytorch's ``tanh`` and ``output_activation=None``; pass ``activation=...``
to override. ``C`` is the first kernel's input channels and ``r = sqrt(out / C)`` of the last one.
"""
from __future__ import annotations

import math
import os
import re
import struct
import zipfile

import numpy as np

from .arch import ArchError, element_budget
from .ziparchive import ZIP_ERRORS, members, read_member

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
MAX_PICKLE_BYTES = 1 << 20          # an ESPCN state dict's data.pkl is a few KB
MAX_PICKLE_OPS = 1 << 18            # each opcode makes at most one object
DEFAULT_ACTIVATION = "tanh"          # ESPCN-pytorch's hidden activation
DEFAULT_OUTPUT_ACTIVATION = None     # ESPCN-pytorch ends with PixelShuffle


class UnsafePickleError(ValueError):
    """The pickle names a global this loader does not allow (it may try to run code)."""


# ------------------------------------------------------------------------------------------ safe values
class _StorageType:
    """Stands for ``torch.FloatStorage`` & co.: only its element type matters."""

    def __init__(self, name):
        self.name = name


def _storage_dtype(name):
    dt = STORAGE_DTYPES[name]
    return np.dtype("<u2") if dt == "bfloat16" else np.dtype(dt)


class StorageRef:
    """A storage named by the pickle (``data/<key>``, ``numel`` elements of ``dtype``), not read yet."""

    def __init__(self, key: str, type_name: str, numel: int):
        self.key, self.type_name, self.numel = key, type_name, numel
        self.dtype = _storage_dtype(type_name)
        self.bfloat16 = type_name == "BFloat16Storage"


class TensorRef:
    """``torch._utils._rebuild_tensor_v2``'s arguments: elements ``offset + sum(i_k * stride_k)`` of a storage,
    checked to lie inside it; :meth:`materialise` copies them out once the storage is read."""

    def __init__(self, storage: StorageRef, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    @property
    def dtype(self) -> np.dtype:
        """The tensor's element type (bfloat16 becomes float32)."""
        return np.dtype(np.float32) if self.storage.bfloat16 else self.storage.dtype

    def materialise(self, data: np.ndarray) -> np.ndarray:
        """The tensor, copied out of its storage's elements ``data``."""
        size, stride = self.size, self.stride
        if 0 not in size:
            view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=size,
                                                   strides=[s * data.itemsize for s in stride], writeable=False)
            out = np.array(view)
        else:
            out = np.zeros(size, data.dtype)
        if self.storage.bfloat16:
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """``torch._utils._rebuild_tensor_v2``: a :class:`TensorRef` once its elements are known to lie in the storage."""
    if not isinstance(storage, StorageRef):
        raise ValueError("tensor does not refer to a storage")
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) and len(size) <= 8
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size + stride)):
        raise ValueError(f"malformed tensor record: offset {offset!r}, size {size!r:.80}, stride {stride!r:.80}")
    if offset < 0:
        raise ValueError(f"negative storage offset {offset}")
    if math.prod(size) > storage.numel:
        raise ValueError(f"tensor of size {size} has more elements than its storage ({storage.numel})")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise ValueError(f"tensor of size {size}, stride {stride}, offset {offset} reads element {last} "
                             f"of a storage of {storage.numel}")
    return TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    """``torch._utils._rebuild_parameter``: a Parameter is its tensor."""
    return data


def _ordered_dict(*args):
    if args:
        raise ValueError("OrderedDict with constructor arguments is not a state dict")
    return {}


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


# ------------------------------------------------------------------------------------------ the machine
class SafeUnpickler:
    """Evaluate a pickle with a whitelist of opcodes and globals (see the module docstring).

    Parameters
    ----------
    data : bytes
        The pickle (``data.pkl``).
    load_storage : callable (key: str, type name: str, numel: int) -> object
        What a persistent id ``("storage", type, key, location, numel)`` stands for (the reader gives a
        :class:`StorageRef`).
    """

    def __init__(self, data: bytes, load_storage):
        self.data, self.pos = memoryview(data), 0
        self.load_storage = load_storage
        self.ops = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"pickle truncated at byte {self.pos} (needs {n} more)")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def _line(self) -> str:
        end = bytes(self.data[self.pos:self.pos + 256]).find(b"\n")
        if end < 0:
            raise ValueError(f"pickle truncated or malformed at byte {self.pos} (expected a newline)")
        return self._take(end + 1)[:-1].decode("utf-8")

    def _global(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: a tensor state dict only needs "
                f"{sorted(f'{m}.{n}' for m, n in ALLOWED_GLOBALS)}") from None

    def _persistent(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise ValueError(f"unsupported persistent id {pid!r}; expected ('storage', type, key, location, numel)")
        _, stype, key, _, numel = pid
        if numel < 0:
            raise ValueError(f"storage {key!r} has a negative size {numel}")
        return self.load_storage(key, stype.name, numel)

    def load(self):
        stack, marks, memo = [], [], {}
        u8, u16, i32, u32, u64 = (struct.Struct(f) for f in ("<B", "<H", "<i", "<I", "<Q"))

        def pop_mark():
            if not marks:
                raise ValueError("pickle: MARK expected")
            m = marks.pop()
            items = stack[m:]
            del stack[m:]
            return items

        def pop():
            if not stack:
                raise ValueError(f"pickle: stack underflow at byte {self.pos}")
            return stack.pop()

        while True:
            op = self._take(1)
            self.ops += 1
            if self.ops > MAX_PICKLE_OPS:
                raise ValueError(f"pickle runs more than {MAX_PICKLE_OPS} opcodes; a state dict needs far fewer")
            if op == b"\x80":                                   # PROTO n
                if self._take(1)[0] > 5:
                    raise ValueError("pickle protocol above 5")
            elif op == b"\x95":                                 # FRAME length (a hint only)
                self._take(8)
            elif op == b".":                                    # STOP
                if len(stack) != 1:
                    raise ValueError("pickle: STOP with a malformed stack")
                return stack[0]
            elif op == b"(":                                    # MARK
                marks.append(len(stack))
            elif op == b"0":                                    # POP
                pop()
            elif op == b"1":                                    # POP_MARK
                pop_mark()
            elif op == b"2":                                    # DUP
                stack.append(stack[-1] if stack else pop())
            elif op == b"}":                                    # EMPTY_DICT
                stack.append({})
            elif op == b"]":                                    # EMPTY_LIST
                stack.append([])
            elif op == b")":                                    # EMPTY_TUPLE
                stack.append(())
            elif op == b"t":                                    # TUPLE
                stack.append(tuple(pop_mark()))
            elif op in (b"\x85", b"\x86", b"\x87"):             # TUPLE1, TUPLE2, TUPLE3
                n = op[0] - 0x84
                if len(stack) < n:
                    raise ValueError("pickle: stack underflow")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif op == b"l":                                    # LIST
                stack.append(pop_mark())
            elif op in (b"a", b"e"):                            # APPEND, APPENDS
                items = [pop()] if op == b"a" else pop_mark()
                target = pop()
                if not isinstance(target, list):
                    raise ValueError("pickle: APPEND to a non-list")
                target.extend(items)
                stack.append(target)
            elif op in (b"s", b"u"):                            # SETITEM, SETITEMS
                if op == b"s":
                    v, k = pop(), pop()
                    items = [k, v]
                else:
                    items = pop_mark()
                target = pop()
                if not isinstance(target, dict) or len(items) % 2:
                    raise ValueError("pickle: SETITEM(S) on a non-dict or with an odd item count")
                for k, v in zip(items[::2], items[1::2]):
                    if not isinstance(k, (str, int)):
                        raise ValueError(f"pickle: unsupported dict key type {type(k).__name__}")
                    target[k] = v
                stack.append(target)
            elif op == b"N":                                    # NONE
                stack.append(None)
            elif op in (b"\x88", b"\x89"):                      # NEWTRUE, NEWFALSE
                stack.append(op == b"\x88")
            elif op == b"J":                                    # BININT
                stack.append(i32.unpack(self._take(4))[0])
            elif op == b"K":                                    # BININT1
                stack.append(self._take(1)[0])
            elif op == b"M":                                    # BININT2
                stack.append(u16.unpack(self._take(2))[0])
            elif op == b"\x8a":                                 # LONG1
                stack.append(int.from_bytes(self._take(self._take(1)[0]), "little", signed=True))
            elif op == b"G":                                    # BINFLOAT
                stack.append(struct.unpack(">d", self._take(8))[0])
            elif op in (b"X", b"\x8c", b"\x8d"):                # BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                n = {b"X": lambda: u32.unpack(self._take(4))[0], b"\x8c": lambda: self._take(1)[0],
                     b"\x8d": lambda: u64.unpack(self._take(8))[0]}[op]()
                try:
                    stack.append(self._take(n).decode("utf-8"))
                except UnicodeDecodeError:
                    raise ValueError("pickle: invalid UTF-8 string") from None
            elif op in (b"B", b"C"):                            # BINBYTES, SHORT_BINBYTES
                n = u32.unpack(self._take(4))[0] if op == b"B" else self._take(1)[0]
                stack.append(self._take(n))
            elif op == b"c":                                    # GLOBAL "module\nname\n"
                stack.append(self._global(self._line(), self._line()))
            elif op == b"\x93":                                 # STACK_GLOBAL
                name, module = pop(), pop()
                if not (isinstance(module, str) and isinstance(name, str)):
                    raise ValueError("pickle: STACK_GLOBAL needs two strings")
                stack.append(self._global(module, name))
            elif op in (b"q", b"r", b"\x94"):                   # BINPUT, LONG_BINPUT, MEMOIZE
                key = {b"q": lambda: self._take(1)[0], b"r": lambda: u32.unpack(self._take(4))[0],
                       b"\x94": lambda: len(memo)}[op]()
                if not stack:
                    raise ValueError("pickle: PUT with an empty stack")
                memo[key] = stack[-1]
            elif op in (b"h", b"j"):                            # BINGET, LONG_BINGET
                key = self._take(1)[0] if op == b"h" else u32.unpack(self._take(4))[0]
                if key not in memo:
                    raise ValueError(f"pickle: memo entry {key} missing")
                stack.append(memo[key])
            elif op == b"Q":                                    # BINPERSID
                stack.append(self._persistent(pop()))
            elif op == b"R":                                    # REDUCE: callable(*args)
                args, func = pop(), pop()
                if not callable(func) or not isinstance(args, tuple):
                    raise ValueError("pickle: REDUCE needs an allowed function and a tuple")
                try:
                    stack.append(func(*args))
                except TypeError as e:
                    raise ValueError(f"pickle: bad arguments to {getattr(func, '__name__', func)}: {e}") from None
            elif op == b"b":                                    # BUILD: only a dict's attributes (_metadata)
                state, target = pop(), pop()
                if not isinstance(target, dict) or not isinstance(state, dict):
                    raise ValueError("pickle: BUILD is only accepted on the state dict itself")
                stack.append(target)
            else:
                raise ValueError(f"pickle opcode {op!r} at byte {self.pos - 1} is not accepted in a tensor "
                                 f"state dict")


# ------------------------------------------------------------------------------------------ the archive
def is_torch_zip(path) -> bool:
    """True when ``path`` is a zip archive with a ``data.pkl`` entry (``torch.save``'s zip format)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return False


def read_state_dict(path, check=None) -> dict[str, np.ndarray]:
    """Load the tensors of a ``torch.save`` zip archive as ``{name: ndarray}``, safely (see module docstring).

    ``check({name: (shape, dtype)})`` runs after unpickling and before any storage is read (the loader
    checks the architecture there). Raises ``ValueError`` for anything that is not a readable tensor state
    dict, :class:`UnsafePickleError` (a ``ValueError``) for a pickle naming a forbidden global.
    """
    try:
        budget = element_budget(os.path.getsize(path))
        with zipfile.ZipFile(path) as z:
            infos = members(z)
            pkl = [n for n in infos if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(pkl) != 1:
                raise ValueError(f"expected one data.pkl in the archive, found {len(pkl)}")
            prefix = pkl[0][:-len("data.pkl")]
            order = "<"
            if prefix + "byteorder" in infos:
                bo = bytes(read_member(z, infos[prefix + "byteorder"], 16)).decode("ascii", "replace").strip()
                if bo not in ("little", "big"):
                    raise ValueError(f"byteorder record {bo!r}, expected little or big")
                order = "<" if bo == "little" else ">"
            storages: dict[str, StorageRef] = {}

            def storage_ref(key, type_name, numel):
                ref = storages.setdefault(key, StorageRef(key, type_name, numel))
                if (ref.type_name, ref.numel) != (type_name, numel):
                    raise ValueError(f"storage {key!r} is named twice with different types or sizes")
                return ref

            obj = SafeUnpickler(read_member(z, infos[pkl[0]], MAX_PICKLE_BYTES), storage_ref).load()
            # Common wrappers: {"state_dict": {...}} or {"model": {...}}, and DataParallel's "module." prefix.
            if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in ("state_dict", "model"):
                obj = next(iter(obj.values()))
            if not isinstance(obj, dict) or not obj or not all(isinstance(v, TensorRef) for v in obj.values()):
                raise ValueError(f"the pickle holds a {type(obj).__name__}, not a dict of tensors")
            refs = {(k[7:] if isinstance(k, str) and k.startswith("module.") else k): v for k, v in obj.items()}
            if check is not None:
                check({k: (r.size, r.dtype) for k, r in refs.items()})
            used = {id(r.storage): r.storage for r in refs.values()}.values()
            total = sum(st.numel for st in used)
            if total > budget:
                raise ValueError(f"the storages declare {total} elements, more than a file of its size may "
                                 f"hold ({budget})")
            data = {}
            for st in used:
                entry = prefix + "data/" + st.key
                if entry not in infos:
                    raise ValueError(f"storage {st.key!r} is missing from the archive")
                need = st.numel * st.dtype.itemsize
                raw = read_member(z, infos[entry], need, need)
                data[st.key] = np.frombuffer(raw, st.dtype.newbyteorder(order)).astype(st.dtype.newbyteorder("="))
            return {k: r.materialise(data[r.storage.key]) for k, r in refs.items()}
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except ArchError:
        raise                                # check's verdict, naming the file already
    except ZIP_ERRORS as e:                  # ValueError included: zipfile's encrypted flag, bad version, ...
        raise ValueError(f"{path}: not a readable PyTorch state dict ({type(e).__name__}: {e})") from None


# ------------------------------------------------------------------------------------------ ESPCN layout
_KEY = re.compile(r"^(first_part|last_part)\.(\d+)\.(weight|bias)$")


def espcn_layout(meta: dict) -> tuple[dict, list]:
    """ESPCN-pytorch keys with their ``(shape, dtype)`` -> ``(arch, [(npespcn name, ESPCN-pytorch name), ...])``.

    Needs no array data, so a reader can check the architecture before it reads any. Raises ``ValueError``
    naming the key when the layout is not ESPCN-pytorch's or a weight is not floating-point.
    """
    convs = {}
    for k, (shape, dtype) in meta.items():
        m = _KEY.match(k) if isinstance(k, str) else None
        if m is None:
            raise ValueError(f"unexpected key {k!r:.80}; expected the ESPCN-pytorch layout "
                             f"(first_part.<i>.weight/bias, last_part.0.weight/bias)")
        if np.dtype(dtype).kind != "f":
            raise ValueError(f"{k}: weights must be floating-point, the storage holds {np.dtype(dtype)}")
        part, idx, kind = m.group(1), int(m.group(2)), m.group(3)
        convs.setdefault((part == "last_part", idx), {})[kind] = (k, tuple(shape))
    order = sorted(convs)
    if not order or not order[-1][0] or sum(1 for last, _ in order if last) != 1:
        raise ValueError("expected exactly one convolution in last_part (last_part.0.weight)")
    names, layers, c_in, channels, k = [], [], None, None, None
    for i, key in enumerate(order, start=1):
        entry = convs[key]
        name = f"{'last_part' if key[0] else 'first_part'}.{key[1]}"
        if set(entry) != {"weight", "bias"}:
            raise ValueError(f"{name}: needs both weight and bias, got {sorted(entry)}")
        (wk, w), (bk, b) = entry["weight"], entry["bias"]
        if len(w) != 4 or w[2] != w[3] or w[2] % 2 == 0 or b != (w[0],):
            raise ValueError(f"{name}: weight {w} / bias {b}; expected (out, in, k, k) with odd k and (out,)")
        if c_in is None:
            channels = w[1]
        elif w[1] != c_in:
            raise ValueError(f"{name}.weight takes {w[1]} channels but the previous layer gives {c_in}")
        names += [(f"conv{i}.weight", wk), (f"conv{i}.bias", bk)]
        if not key[0]:
            layers.append([int(w[2]), int(w[0])])
        c_in, k = w[0], w[2]
    r = math.isqrt(c_in // channels) if channels and c_in % channels == 0 else 0
    if r < 1 or r * r * channels != c_in:
        raise ValueError(f"last_part.0 gives {c_in} channels, not {channels} x r x r for an integer r")
    if k != 3:
        raise ValueError("last_part.0 must be a 3x3 convolution")
    arch = {"scale": r, "channels": int(channels), "layers": layers,
            "activation": DEFAULT_ACTIVATION, "output_activation": DEFAULT_OUTPUT_ACTIVATION}
    return arch, names


def espcn_from_state_dict(sd: dict) -> tuple[dict, dict]:
    """ESPCN-pytorch keys -> ``(arch, params)`` in npespcn's naming (``conv1.weight``, ...).

    The file stores no activations, so ``arch`` holds ESPCN-pytorch's (:data:`DEFAULT_ACTIVATION`,
    :data:`DEFAULT_OUTPUT_ACTIVATION`); :func:`npespcn.formats.load_model` replaces them with any override.
    """
    arch, names = espcn_layout({k: (np.shape(v), np.asarray(v).dtype) for k, v in sd.items()})
    return arch, {mine: np.asarray(sd[theirs], dtype=np.float32) for mine, theirs in names}
