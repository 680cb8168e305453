# SPDX-License-Identifier: MIT
"""Base class of the objects that own a C handle."""
import ctypes

from . import _lib, errors


class Handle:
    """Owns one C handle, released by close(), by leaving a `with` block,
    or (as a fallback) when the object is garbage collected.  Any use
    after close() raises errors.ClosedError.

    Not for concurrent close: do not close a handle while another thread
    is inside a call on it."""

    _free_name = None    # e.g. "nvp_chain_free"
    _errmsg_name = None  # e.g. "nvp_chain_errmsg"
    _ptr = None

    @classmethod
    def _wrap(cls, ptr):
        """A new object owning the raw handle ptr (the public
        constructors refuse direct construction)."""
        self = cls.__new__(cls)
        self._adopt(ptr)
        return self

    def _adopt(self, ptr):
        """Takes ownership of a raw handle (an int or c_void_p)."""
        if isinstance(ptr, ctypes.c_void_p):
            ptr = ptr.value
        if not ptr:
            raise errors.NvpError("internal: NULL handle")
        self._ptr = ctypes.c_void_p(ptr)
        self._free = getattr(_lib.lib, self._free_name)

    @property
    def _h(self):
        """The live handle; raises ClosedError after close()."""
        p = self._ptr
        if p is None:
            raise errors.ClosedError(
                "%s is closed" % type(self).__name__)
        return p

    @property
    def closed(self):
        return self._ptr is None

    def close(self):
        """Frees the C handle now; later calls are harmless."""
        p, self._ptr = self._ptr, None
        if p is not None:
            self._free(p)

    def __enter__(self):
        self._h  # refuses a closed handle
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: ctypes may be gone
            pass

    def _check(self, rc):
        if rc != _lib.OK:
            raise errors.error_for(rc, handle_errmsg=self._errmsg)

    def _errmsg(self):
        p = self._ptr
        if p is None:
            return ""
        return _lib.decode(getattr(_lib.lib, self._errmsg_name)(p))

    def __repr__(self):
        if self._ptr is None:
            return "<%s (closed)>" % type(self).__name__
        return "<%s %s>" % (type(self).__name__, self._describe())

    def _describe(self):
        return "at 0x%x" % self._ptr.value


def out_handle():
    """A fresh nvp_<type> ** out-parameter."""
    return ctypes.c_void_p()


class ChainOwnable(Handle):
    """A handle a Chain can take over: a layer (Chain.from_layers) or a
    base (Chain.set_base).  Once taken, the object forgets the handle
    without freeing it (the chain frees it), and any use says where it
    went (_taken_hint)."""

    _taken = False
    _taken_hint = ""  # e.g. "Chain.set_base took it; use chain.base"

    @property
    def _h(self):
        p = self._ptr
        if p is None:
            if self._taken:
                raise errors.ClosedError(
                    "this %s belongs to a Chain now (%s)"
                    % (type(self).__name__, self._taken_hint))
            raise errors.ClosedError("%s is closed" % type(self).__name__)
        return p

    def _give_to_chain(self):
        """The chain adopted the handle: forget it without freeing."""
        self._ptr = None
        self._taken = True

    @property
    def owned_by_chain(self):
        """True once a Chain has taken the handle."""
        return self._taken

    def __repr__(self):
        if self._taken:
            return "<%s (owned by a Chain)>" % type(self).__name__
        return Handle.__repr__(self)
