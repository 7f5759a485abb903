"""Running an artifact (kernels compiled ahead of time by `mfx compile` or
`mfx demo`, include/mfx/artifact.h) on numpy arrays, through libmfxrt:

    m = mfx.Module("k.mfxa")            # loads and verifies every kernel
    m.kernels                           # their names
    out = m.run("linear", X=x, W=w)     # {"Y": array}
    seconds = m.time(0, repeat=20, X=x, W=w)

Inputs are passed by argument name, converted to the kernel's dtype when
numpy can do so without changing their kind (float to float, int to int)
and must have the kernel's exact shape."""

import ctypes

import numpy as np

from ._lib import c_int_arg, check, declare

_MAX_DIMS = 8
_MAX_ARGS = 16
_ROLE_INPUT, _ROLE_OUTPUT = 1, 2

_NUMPY_OF = {
    "bool": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "u8": np.uint8, "u32": np.uint32, "u64": np.uint64, "f32": np.float32,
}


class _Array(ctypes.Structure):
    """mfx_array."""

    _fields_ = [
        ("dtype", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("shape", ctypes.c_int64 * _MAX_DIMS),
        ("data", ctypes.c_void_p),
    ]


class _Arg(ctypes.Structure):
    """mfx_artifact_arg."""

    _fields_ = [
        ("name", ctypes.c_char * 64),
        ("dtype", ctypes.c_int),
        ("role", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("shape", ctypes.c_int64 * _MAX_DIMS),
    ]


class _KernelHead(ctypes.Structure):
    """The leading fields of mfx_artifact_kernel, up to its arguments (the
    rest is never read from Python)."""

    _fields_ = [
        ("name", ctypes.c_char * 64),
        ("op", ctypes.c_char * 64),
        ("n_dims", ctypes.c_int),
        ("dim_names", (ctypes.c_char * 16) * _MAX_DIMS),
        ("dims", ctypes.c_int64 * _MAX_DIMS),
        ("target", ctypes.c_char * 32),
        ("machine", ctypes.c_char * 32),
        ("cpu_features", ctypes.c_char * 256),
        ("compiler", ctypes.c_char * 64),
        ("symbol", ctypes.c_char * 64),
        ("config", ctypes.c_char * 1024),
        ("n_args", ctypes.c_int),
        ("args", _Arg * _MAX_ARGS),
    ]


class _Options(ctypes.Structure):
    """mfx_artifact_options."""

    _fields_ = [("device", ctypes.c_char_p), ("threads", ctypes.c_int)]


_dtype_name = declare("mfx_dtype_name", ctypes.c_char_p, ctypes.c_int)
_load = declare("mfx_artifact_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Options),
                ctypes.POINTER(ctypes.c_void_p))
_free = declare("mfx_artifact_free", None, ctypes.c_void_p)
_count = declare("mfx_artifact_kernel_count", ctypes.c_int, ctypes.c_void_p)
_kernel_at = declare("mfx_artifact_kernel_at", ctypes.POINTER(_KernelHead), ctypes.c_void_p,
                     ctypes.c_int)
_find = declare("mfx_artifact_find_kernel", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                ctypes.POINTER(ctypes.c_int))
_device = declare("mfx_artifact_device", ctypes.c_char_p, ctypes.c_void_p)
_run = declare("mfx_artifact_run", ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
               ctypes.POINTER(_Array), ctypes.c_int, ctypes.POINTER(_Array))
_time = declare("mfx_artifact_time", ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                ctypes.POINTER(_Array), ctypes.c_int, ctypes.POINTER(_Array), ctypes.c_int,
                ctypes.POINTER(ctypes.c_double))


def _numpy_dtype(code):
    name = _dtype_name(code).decode()
    if name not in _NUMPY_OF:
        raise ValueError(f"artifact argument of dtype {name!r} has no numpy equivalent")
    return np.dtype(_NUMPY_OF[name])


class _Signature:
    """One argument: name, numpy dtype, C dtype code, shape."""

    def __init__(self, arg):
        self.name = arg.name.decode()
        self.code = arg.dtype
        self.dtype = _numpy_dtype(arg.dtype)
        self.shape = tuple(arg.shape[i] for i in range(arg.ndim))
        self.role = arg.role


def _c_array(sig, array):
    a = _Array()
    a.dtype = sig.code
    a.ndim = len(sig.shape)
    for i, n in enumerate(sig.shape):
        a.shape[i] = n
    a.data = array.ctypes.data
    return a


def _converted(kernel, sig, value):
    """value as the kernel's dtype, refusing values the conversion would
    change (an int64 index of 2**32 + 3 is not row 3; a float64 of 1e39 is
    not inf)."""
    converted = np.ascontiguousarray(value, dtype=sig.dtype)
    if value.dtype == converted.dtype or value.size == 0:
        return converted
    if np.issubdtype(sig.dtype, np.integer):
        info = np.iinfo(sig.dtype)
        bad = (value < info.min) | (value > info.max)
    else:
        bad = np.isfinite(value) & ~np.isfinite(converted)
    if np.any(bad):
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"kernel {kernel}: input {sig.name}{list(at)} = {value[at]!r} does not "
                         f"fit in {np.dtype(sig.dtype).name}")
    return converted


class Module:
    """A loaded artifact. device: "cpu", "cuda", "cuda:N" or None (as the
    kernels' target says); threads: CPU pool size, 0 for one per CPU."""

    def __init__(self, path, device=None, threads=0):
        handle = ctypes.c_void_p()
        options = _Options(None if device is None else device.encode(), c_int_arg(threads, "threads", 0))
        check(_load(str(path).encode(), ctypes.byref(options), ctypes.byref(handle)))
        self._handle = handle
        self.path = str(path)
        self.device = _device(handle).decode()
        self._signatures = [self._read(i) for i in range(_count(handle))]
        self.kernels = [name for name, _, _ in self._signatures]

    def _read(self, index):
        head = _kernel_at(self._handle, index).contents
        args = [_Signature(head.args[i]) for i in range(head.n_args)]
        inputs = [a for a in args if a.role == _ROLE_INPUT]
        outputs = [a for a in args if a.role == _ROLE_OUTPUT]
        return head.name.decode(), inputs, outputs

    def __del__(self):
        self.close()

    def close(self):
        handle = getattr(self, "_handle", None)
        if handle:
            _free(handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _index(self, name_or_index):
        if not getattr(self, "_handle", None):
            raise ValueError(f"module {self.path} is closed")
        if isinstance(name_or_index, (int, np.integer)):
            if not 0 <= name_or_index < len(self.kernels):
                raise ValueError(f"module {self.path}: kernel index {name_or_index}; it has "
                                 f"{len(self.kernels)} kernels")
            return int(name_or_index)
        index = ctypes.c_int()
        check(_find(self._handle, str(name_or_index).encode(), ctypes.byref(index)))
        return index.value

    def signature(self, name_or_index):
        """{"inputs": [(name, dtype, shape)], "outputs": [...]} of a kernel."""
        _, inputs, outputs = self._signatures[self._index(name_or_index)]
        def describe(sigs):
            return [(s.name, s.dtype, s.shape) for s in sigs]
        return {"inputs": describe(inputs), "outputs": describe(outputs)}

    def _arrays(self, index, inputs):
        name, in_sigs, out_sigs = self._signatures[index]
        expected = [s.name for s in in_sigs]
        unknown = sorted(set(inputs) - set(expected))
        missing = [n for n in expected if n not in inputs]
        if unknown or missing:
            raise ValueError(f"kernel {name}: inputs {expected}; got unknown {unknown} and "
                             f"missing {missing}")
        keep = []
        for s in in_sigs:
            value = np.asarray(inputs[s.name])
            if not np.can_cast(value.dtype, s.dtype, casting="same_kind"):
                raise ValueError(f"kernel {name}: input {s.name} has dtype {value.dtype}; "
                                 f"expected {s.dtype}")
            if value.shape != s.shape:
                raise ValueError(f"kernel {name}: input {s.name} has shape {value.shape}; "
                                 f"expected {s.shape}")
            keep.append(_converted(name, s, value))
        outs = [np.empty(s.shape, dtype=s.dtype) for s in out_sigs]
        c_in = (_Array * max(len(in_sigs), 1))(*[_c_array(s, a) for s, a in zip(in_sigs, keep)])
        c_out = (_Array * max(len(out_sigs), 1))(*[_c_array(s, a) for s, a in zip(out_sigs, outs)])
        return keep, outs, c_in, c_out, out_sigs

    def run(self, name_or_index, **inputs):
        """Runs one kernel; returns {output name: numpy array}."""
        index = self._index(name_or_index)
        keep, outs, c_in, c_out, out_sigs = self._arrays(index, inputs)
        check(_run(self._handle, index, len(keep), c_in, len(outs), c_out))
        return {s.name: a for s, a in zip(out_sigs, outs)}

    def time(self, name_or_index, repeat=10, **inputs):
        """Median seconds of one run after a warm-up (device events on a GPU)."""
        index = self._index(name_or_index)
        keep, outs, c_in, c_out, _ = self._arrays(index, inputs)
        seconds = ctypes.c_double()
        check(_time(self._handle, index, len(keep), c_in, len(outs), c_out, c_int_arg(repeat, "repeat", 1, 1000000),
                    ctypes.byref(seconds)))
        return seconds.value
