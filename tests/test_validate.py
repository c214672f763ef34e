"""SavedState: each check of a saved array, and its one-line message."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from eventgen.errors import BundleError
from eventgen.validate import SavedState

SAVED = SavedState(
    {
        "scale": np.array([0.5, 2.0], dtype=np.float32),
        "cols": np.array([3, 7], dtype=np.uint16),
        "mask": np.array([True, False]),
        "names": np.array(["j", "l"]),
        "mode": np.array("buffer"),
        "big": np.array([1e300, 1.0]),
        "nan": np.array([np.nan, 1.0]),
        "cplx": np.array([1j, 2.0]),
        "rec": np.zeros(2, dtype=[("a", "f4")]),
    },
    "'b/x.npz'",
)


def test_valid_arrays_come_back_native_and_contiguous() -> None:
    scale = SAVED.array("scale", "float", (2,), above=0.0)
    assert scale.dtype == np.float64 and scale.flags.c_contiguous and scale.tolist() == [0.5, 2.0]
    assert SAVED.array("scale", "float", (None,), dtype=np.float32).dtype == np.float32
    assert SAVED.array("cols", "int", (2,), low=0, high=7).dtype == np.int64
    assert SAVED.matching("names", "str", ["j", "l"], "the schema").tolist() == ["j", "l"]
    assert SAVED.choice("mode", ("buffer", "kde")) == "buffer"
    assert SavedState.of(SAVED, "other") is SAVED and SavedState.of({"a": 1}, "s").scalar("a", "int") == 1


@pytest.mark.parametrize(
    ("key", "kind", "shape", "bounds", "match"),
    [
        (
            "absent",
            "float",
            (2,),
            {},
            r"^'b/x.npz' lacks \['absent'\]; the bundle is corrupt or was altered: fit",
        ),
        ("cols", "float", (2,), {}, r"array 'cols' has dtype uint16, expected float"),
        ("mask", "int", (2,), {}, r"array 'mask' has dtype bool, expected int"),
        ("cplx", "float", (2,), {}, r"array 'cplx' has dtype complex128, expected float"),
        ("rec", "float", (2,), {}, r"array 'rec' has dtype \[\('a', '<f4'\)\], expected float"),
        ("names", "float", (2,), {}, r"array 'names' has dtype <U1, expected float"),
        (
            "scale",
            "float",
            (3,),
            {"sized_by": "one per column"},
            r"has shape \(2,\), expected \(3,\) \(one per column\)",
        ),
        ("scale", "float", (2, None), {}, r"has shape \(2,\), expected \(2, N\)"),
        ("scale", "float", (), {}, r"has shape \(2,\), expected \(\)"),
        (
            "nan",
            "float",
            (2,),
            {},
            r"array 'nan' has 1 NaN, infinite or out-of-range \(\|x\| > 3.4e\+38\) values",
        ),
        ("big", "float", (2,), {}, r"array 'big' has 1 NaN, infinite or out-of-range"),
        ("scale", "float", (2,), {"above": 0.5}, r"array 'scale' has values down to 0.5, expected > 0.5"),
        ("scale", "float", (2,), {"low": 1.0}, r"has values down to 0.5, expected >= 1"),
        ("cols", "int", (2,), {"high": 6}, r"array 'cols' has values up to 7, expected <= 6"),
    ],
)
def test_invalid_arrays_are_refused(
    key: str, kind: Any, shape: tuple[int | None, ...], bounds: dict[str, Any], match: str
) -> None:
    with pytest.raises(BundleError, match=match) as refused:
        SAVED.array(key, kind, shape, **bounds)
    assert str(refused.value).startswith("'b/x.npz'") and str(refused.value).endswith("'eventgen fit'")


def test_free_sizes_must_not_be_empty_and_values_must_match() -> None:
    empty = SavedState({"mu": np.zeros((0, 3), np.float32)}, "s")
    with pytest.raises(BundleError, match=r"has shape \(0, 3\), expected \(N, 3\)"):
        empty.array("mu", "float", (None, 3))
    with pytest.raises(BundleError, match=r"array 'names' has shape \(2,\), expected \(1,\) \(the schema\)"):
        SAVED.matching("names", "str", ["j"], "the schema")
    with pytest.raises(
        BundleError, match=r"array 'names' is \['j', 'l'\], but the schema gives \['j', 'm'\]"
    ):
        SAVED.matching("names", "str", ["j", "m"], "the schema")
    with pytest.raises(BundleError, match=r"array 'cols' is \[3, 7\], but the schema gives \[3, 8\]"):
        SAVED.matching("cols", "int", [3, 8], "the schema")
    with pytest.raises(
        BundleError, match=r"array 'mode' names an unknown mode 'buffer', expected one of \['kde'\]"
    ):
        SAVED.choice("mode", ("kde",))
