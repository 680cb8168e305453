# SPDX-License-Identifier: MIT
"""Column names across the C boundary, for Chain and Scaler alike."""
import ctypes
from ctypes import c_void_p


def encode(names):
    """(array of char pointers, the buffers it points into) for a list of
    str names; keep the buffers alive for the call."""
    encoded = []
    for j, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError("column name %d is %s, not str"
                            % (j, type(name).__name__))
        if "\0" in name:
            raise ValueError("column name %d holds a NUL character" % j)
        encoded.append(name.encode("utf-8"))
    bufs = [ctypes.create_string_buffer(e) for e in encoded]
    arr = (c_void_p * max(len(bufs), 1))(
        *[ctypes.addressof(b) for b in bufs])
    return arr, bufs


def read(name_at, n):
    """[name_at(0), ... name_at(n - 1)] decoded, or None when the first is
    NULL (no names)."""
    if n == 0 or name_at(0) is None:
        return None
    return [name_at(j).decode("utf-8") for j in range(n)]
