"""Checked reading of saved states: a bundle is untrusted input.

A bundle directory can come from anywhere (a download, a shared folder, a careless
edit), and its arrays end up as row and column indices in compiled kernels that do not
check bounds, as sizes of allocations and as torch weights. Every fitted part is
therefore rebuilt from a :class:`SavedState`, which checks each array before anything
else sees it:

- its dtype kind (float, int, bool or str: never object, complex or structured), then
  converts it to the native, C-contiguous dtype the code uses;
- its shape against the sizes the schema, the model settings or another array of the
  same state fix (``None`` where a size is free);
- its values: floats finite and within the float32 range (events and weights are
  float32), inclusive bounds ``low``/``high`` and a strict lower bound ``above``, and
  arrays that must equal what the schema implies (column indices, column names).

A failure is a :class:`~eventgen.errors.BundleError` of one line naming the file, the
array, what is wrong and the fix. The npy headers of an ``.npz`` are checked against
the size of the file before anything is allocated (:func:`eventgen.bundle.read_npz`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from eventgen.errors import BundleError

ArrayKind = Literal["float", "int", "bool", "str"]
_DTYPE_KINDS: dict[str, str] = {"float": "f", "int": "iu", "bool": "b", "str": "U"}
_NATIVE: dict[str, type] = {"float": np.float64, "int": np.int64, "bool": np.bool_, "str": np.str_}
FLOAT32_MAX = float(np.finfo(np.float32).max)
REFIT = "the bundle is corrupt or was altered: fit it again with 'eventgen fit'"


class SavedState(Mapping[str, np.ndarray]):
    """The arrays of one saved state (one ``.npz`` of a bundle), read through checks.

    ``source`` names the state in messages, e.g. the file it was read from.
    """

    def __init__(self, arrays: Mapping[str, Any], source: str) -> None:
        self._arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
        self.source = source

    @classmethod
    def of(cls, state: Mapping[str, Any], source: str) -> SavedState:
        """``state`` itself when it is a SavedState (it knows its file), else wrapped as ``source``."""
        return state if isinstance(state, SavedState) else cls(state, source)

    def __getitem__(self, key: str) -> np.ndarray:
        return self._arrays[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def error(self, key: str, problem: str) -> BundleError:
        """The one-line error for array ``key``: ``problem`` says what is wrong."""
        return array_error(self.source, key, problem)

    def require(self, *keys: str) -> None:
        """Raise a BundleError listing the ``keys`` that the state lacks."""
        missing = [k for k in keys if k not in self._arrays]
        if missing:
            raise BundleError(f"{self.source} lacks {missing}; {REFIT}")

    def array(
        self,
        key: str,
        kind: ArrayKind,
        shape: Sequence[int | None],
        *,
        dtype: type | None = None,
        low: float | None = None,
        high: float | None = None,
        above: float | None = None,
        sized_by: str = "",
    ) -> np.ndarray:
        """Array ``key`` checked and converted to ``dtype`` (default: float64, int64, bool, str).

        ``shape`` gives each axis' size or None for a free one (at least 1); ``sized_by``
        says in the message where the sizes come from. Values must lie in ``[low, high]``
        and be ``> above`` where those are given; floats must be finite and within the
        float32 range.
        """
        self.require(key)
        a = self._arrays[key]
        if a.dtype.kind not in _DTYPE_KINDS[kind] or a.dtype.fields is not None:
            raise self.error(key, f"has dtype {a.dtype}, expected {kind}")
        if a.ndim != len(shape) or any(
            n != want if want is not None else n < 1 for n, want in zip(a.shape, shape, strict=True)
        ):
            note = f" ({sized_by})" if sized_by else ""
            raise self.error(key, f"has shape {a.shape}, expected {_shape_text(shape)}{note}")
        if kind == "float" and a.size:  # checked before the conversion, which could overflow
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(a) <= FLOAT32_MAX)
            if bad.any():
                raise self.error(
                    key,
                    f"has {int(bad.sum())} NaN, infinite or out-of-range (|x| > {FLOAT32_MAX:.3g}) values",
                )
        if kind in ("float", "int") and a.size:  # bounds before the conversion, which could wrap around
            self._check_bounds(key, a.min().item(), a.max().item(), low, high, above)
        a = np.ascontiguousarray(a, dtype=dtype or _NATIVE[kind])
        return a

    def weights(self, key: str, shape: Sequence[int | None], sized_by: str = "") -> np.ndarray:
        """Float64 weights ``key``: finite, >= 0 and with a positive sum."""
        weights = self.array(key, "float", shape, low=0.0, sized_by=sized_by)
        if not weights.sum() > 0:
            raise self.error(key, "sums to 0, expected weights with a positive sum")
        return weights

    def scalar(self, key: str, kind: ArrayKind, **bounds: Any) -> Any:
        """0-d array ``key`` checked like :meth:`array`, as a Python number or string."""
        return self.array(key, kind, (), **bounds).item()

    def choice(self, key: str, choices: Sequence[str]) -> str:
        """0-d string ``key``, one of ``choices``."""
        value = str(self.scalar(key, "str"))
        if value not in choices:
            raise self.error(key, f"names an unknown {key} {value[:40]!r}, expected one of {list(choices)}")
        return value

    def matching(
        self, key: str, kind: ArrayKind, expected: Sequence[Any] | np.ndarray, what: str
    ) -> np.ndarray:
        """Array ``key``, which must equal ``expected`` (``what`` says where that comes from)."""
        want: np.ndarray = np.asarray(expected, dtype=_NATIVE[kind])
        found = self.array(key, kind, want.shape, sized_by=what)
        if not np.array_equal(found, want):
            raise self.error(key, f"is {_brief(found)}, but {what} gives {_brief(want)}")
        return found

    def _check_bounds(
        self, key: str, lo: float, hi: float, low: float | None, high: float | None, above: float | None
    ) -> None:
        if low is not None and lo < low:
            raise self.error(key, f"has values down to {lo:g}, expected >= {low:g}")
        if above is not None and lo <= above:
            raise self.error(key, f"has values down to {lo:g}, expected > {above:g}")
        if high is not None and hi > high:
            raise self.error(key, f"has values up to {hi:g}, expected <= {high:g}")


def array_error(source: str, key: str, problem: str) -> BundleError:
    """The one-line error for array ``key`` of ``source``: what is wrong and the fix."""
    return BundleError(f"{source} is invalid: array {key!r} {problem}; {REFIT}")


def _shape_text(shape: Sequence[int | None]) -> str:
    """``(N, 28)`` for ``(None, 28)``: a shape with its free sizes as N."""
    sizes = ["N" if n is None else str(n) for n in shape]
    return f"({', '.join(sizes)}{',' if len(sizes) == 1 else ''})"


def _brief(values: np.ndarray, limit: int = 8) -> str:
    """A short one-line rendering of an array's first values for messages."""
    items = [
        repr(v[:40]) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)
        for v in values.ravel()[:limit].tolist()
    ]
    return "[" + ", ".join(items) + (", ...]" if values.size > limit else "]")
