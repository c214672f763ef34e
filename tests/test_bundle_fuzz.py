"""A bundle is untrusted input: every tampered array of the fixture bundle is refused.

Each case changes one array of one ``.npz`` of a copy of ``tests/data/bundle`` (its shape,
dtype or values, or the shape its npy header declares) and checks that loading raises a
one-line BundleError naming the file and the array, never touching memory the bundle
does not own. The fixture samples in mode buffer; the arrays of modes kde, gmm and flow are
fuzzed on variants of it that store those modes, and the preprocessing of the mass
representation in the canonical frame on a variant whose preprocess.npz stores that. A representative subset runs ``eventgen generate`` on the tampered bundle
and checks exit code 2, one line on stderr, no traceback, no signal and no output.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from eventgen.bundle import Bundle
from eventgen.components import bandwidth
from eventgen.errors import BundleError
from eventgen.flow import parameter_count

ROOT = Path(__file__).parents[1]
FIXTURE = ROOT / "tests" / "data" / "bundle"
NPZ_FILES = ("model.npz", "preprocess.npz", "buffer.npz", "cleanup.npz")
N_FEATURES = 28  # columns of the fixture's ttbar schema

# Arrays whose values must be > 0 or >= 0 (a negated copy is invalid), and integer arrays
# that index columns or components or bound a size (a value past the end is invalid).
MUST_NOT_BE_NEGATIVE = {
    ("preprocess.npz", "log_scale"),
    ("preprocess.npz", "std"),
    ("buffer.npz", "state_version"),
    ("buffer.npz", "sigma"),
    ("buffer.npz", "weights"),
    ("buffer.npz", "h"),
    ("buffer.npz", "gmm_weights"),
    ("buffer.npz", "gmm_chol"),
    ("buffer.npz", "flow_features"),
    ("buffer.npz", "flow_transforms"),
    ("buffer.npz", "flow_hidden"),
    ("buffer.npz", "flow_bins"),
    ("buffer.npz", "flow_scale"),
    ("cleanup.npz", "pt_min"),
    ("cleanup.npz", "eta_max"),
    ("cleanup.npz", "eta_cols"),
    ("cleanup.npz", "count_cols"),
}
INDICES = {("cleanup.npz", "eta_cols"), ("cleanup.npz", "count_cols")}


def _read(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURE / name, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


ORIGINAL = {name: _read(name) for name in NPZ_FILES}
_MU = ORIGINAL["buffer.npz"]["mu"].astype(np.float64)
_FLOW = {"features": _MU.shape[1], "transforms": 1, "hidden": 4, "bins": 8}
# Variants that sample in mode kde, gmm or flow: their settings and the arrays they add to buffer.npz.
VARIANTS: dict[str, tuple[dict[str, object], dict[str, np.ndarray]]] = {
    "kde": ({"mode": "kde"}, {"h": bandwidth(_MU, "scott")}),
    "gmm": (
        {"mode": "gmm", "n_components": 4},
        {
            "gmm_weights": np.array([0.4, 0.3, 0.2, 0.1]),
            "gmm_means": _MU[:4].copy(),
            "gmm_chol": np.tile(0.1 * np.eye(_MU.shape[1]), (4, 1, 1)),
        },
    ),
    "flow": (
        {"mode": "flow", "flow_transforms": 1, "flow_hidden": 4},
        {
            **{f"flow_{k}": np.asarray(v, dtype=np.int64) for k, v in _FLOW.items()},
            "flow_shift": _MU.mean(axis=0).astype(np.float32),
            "flow_scale": _MU.std(axis=0).astype(np.float32),
            "flow_params": np.full(parameter_count(**_FLOW), 0.01, dtype=np.float32),
        },
    ),
}


def _mass_preprocessing() -> dict[str, np.ndarray]:
    """The state of the mass representation in the canonical frame, fitted on the fixture's sample."""
    from eventgen.io import read_events
    from eventgen.preprocess import Preprocessor
    from eventgen.schema import get_schema

    events = read_events(ROOT / "tests" / "data" / "ttbar_small.parquet").data
    state = Preprocessor("physics", "mass", "canonical").fit(events, get_schema("ttbar")).get_state()
    return {key: np.asarray(value) for key, value in state.items()}


# Variants whose preprocess.npz is another preprocessing (bundle.json gets the schema it was fitted on).
PREPROCESS_VARIANTS: dict[str, dict[str, np.ndarray]] = {"mass": _mass_preprocessing()}


def _first(a: np.ndarray, value: object, dtype: type | None = None) -> np.ndarray:
    """A copy of ``a`` (as ``dtype``) whose first element is ``value``."""
    out = np.array(a, dtype=dtype or a.dtype)
    out.reshape(-1)[0] = value
    return out


def _shape_mutations(a: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    found: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "extra_row": lambda a: np.concatenate([a, a[:1]]) if a.ndim else np.stack([a, a]),
        "extra_axis": lambda a: a[..., None],
    }
    if a.ndim:
        found["missing_row"] = lambda a: a[:-1]
        found["empty"] = lambda a: a[:0]
    if a.ndim == 2:
        found["extra_column"] = lambda a: np.concatenate([a, a[:, :1]], axis=1)
        found["missing_column"] = lambda a: a[:, :-1]
        if a.shape[0] != a.shape[1]:
            found["transposed"] = lambda a: np.ascontiguousarray(a.T)
    return found


def _dtype_mutations(a: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    found: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "complex": lambda a: np.zeros(a.shape, np.complex128) + (a if a.dtype.kind in "fiub" else 0),
        "object": lambda a: a.astype(object),
    }
    if a.dtype.kind == "f":
        found["int"] = lambda a: a.astype(np.int64)
    else:
        found["float"] = lambda a: np.arange(a.size, dtype=np.float64).reshape(a.shape)
    if a.dtype.kind != "U":
        found["str"] = lambda a: a.astype(str)
    return found


def _value_mutations(name: str, key: str, a: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    found: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if a.dtype.kind == "f":
        found["nan"] = lambda a: _first(a, np.nan)
        found["inf"] = lambda a: _first(a, -np.inf)
        found["huge"] = lambda a: _first(a, 1e300, np.float64)
    if a.dtype.kind in "iu":
        found["huge"] = lambda a: _first(a, 10**12)
    if a.dtype.kind == "b":
        found["flipped"] = lambda a: ~a
    if a.dtype.kind == "U":
        found["renamed"] = lambda a: _first(a, "tampered", np.result_type(a.dtype, "<U8"))
    if (name, key) in MUST_NOT_BE_NEGATIVE:
        found["negative"] = lambda a: -np.abs(a) - 1
    if (name, key) in INDICES:
        found["past_the_end"] = lambda a: _first(a, N_FEATURES)
        found["minus_one"] = lambda a: _first(a, -1)
    return found


MUTATIONS = {
    (variant, name, key): {**_shape_mutations(a), **_dtype_mutations(a), **_value_mutations(name, key, a)}
    for variant, files in [
        ("", ORIGINAL),
        *((variant, {"buffer.npz": arrays}) for variant, (_, arrays) in VARIANTS.items()),
        *((variant, {"preprocess.npz": arrays}) for variant, arrays in PREPROCESS_VARIANTS.items()),
    ]
    for name, arrays in files.items()
    for key, a in arrays.items()
}
HEADERS: dict[str, Callable[[tuple[int, ...]], tuple[int, ...]]] = {
    "header_huge": lambda shape: (10**6, 10**7),
    "header_one_more": lambda shape: (shape[0] + 1, *shape[1:]) if shape else (1,),
}


def _tampered(tmp_path: Path, variant: str, name: str, key: str, mutation: str) -> Path:
    """A copy of the fixture bundle (or its ``variant``) with array ``key`` of file ``name`` changed."""
    bundle = _variant(tmp_path, variant)
    arrays = {**ORIGINAL[name], **_variant_arrays(variant, name)}
    if mutation in HEADERS:
        np.savez(bundle / name, **arrays)
        _declare_shape(bundle / name, key, HEADERS[mutation](arrays[key].shape))
    else:
        arrays[key] = MUTATIONS[variant, name, key][mutation](arrays[key])
        np.savez(bundle / name, **arrays)
    return bundle


def _variant_arrays(variant: str, name: str) -> dict[str, np.ndarray]:
    """The arrays of file ``name`` that ``variant`` replaces (none for the fixture itself)."""
    if variant in VARIANTS and name == "buffer.npz":
        return VARIANTS[variant][1]
    if variant in PREPROCESS_VARIANTS and name == "preprocess.npz":
        return PREPROCESS_VARIANTS[variant]
    return {}


def _variant(tmp_path: Path, variant: str) -> Path:
    """A copy of the fixture bundle, sampling in the mode of ``variant`` or with its preprocessing."""
    bundle = tmp_path / "bundle"
    shutil.copytree(FIXTURE, bundle)
    if variant in PREPROCESS_VARIANTS:
        from eventgen.schema import get_schema

        meta = json.loads((bundle / "bundle.json").read_text())
        meta["schema"] = get_schema("ttbar").to_dict()
        (bundle / "bundle.json").write_text(json.dumps(meta))
        np.savez(bundle / "preprocess.npz", **PREPROCESS_VARIANTS[variant])
    elif variant:
        settings, arrays = VARIANTS[variant]
        meta = json.loads((bundle / "bundle.json").read_text())
        meta["sampling"].update(settings)
        (bundle / "bundle.json").write_text(json.dumps(meta))
        np.savez(bundle / "buffer.npz", **ORIGINAL["buffer.npz"], **arrays)
    return bundle


def _declare_shape(path: Path, key: str, shape: tuple[int, ...]) -> None:
    """Rewrite the npy header of member ``key`` of ``path`` to declare ``shape``, data unchanged."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    member = io.BytesIO(members[f"{key}.npy"])
    np.lib.format.read_magic(member)
    _, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
    )
    members[f"{key}.npy"] = header.getvalue() + member.read()
    with zipfile.ZipFile(path, "w") as archive:
        for filename, data in members.items():
            archive.writestr(filename, data)


def _case_id(variant: str, name: str, key: str, mutation: str) -> str:
    return "-".join(part for part in (name[:-4], variant, key, mutation) if part)


CASES = [
    pytest.param(variant, name, key, mutation, id=_case_id(variant, name, key, mutation))
    for (variant, name, key), mutations in MUTATIONS.items()
    for mutation in [*mutations, *HEADERS]
]


def test_every_array_is_covered() -> None:
    assert {key for _, name, key in MUTATIONS} >= {key for _, key in MUST_NOT_BE_NEGATIVE | INDICES}
    assert sum(len(arrays) for arrays in ORIGINAL.values()) + 4 + 7 + 9 == len(MUTATIONS) > 30
    assert {"representation", "frame", "schema"} <= {
        key for variant, _, key in MUTATIONS if variant == "mass"
    }
    assert all({"extra_row", "complex", "object"} <= set(m) for m in MUTATIONS.values())


@pytest.mark.parametrize("variant", ["", *VARIANTS, *PREPROCESS_VARIANTS])
def test_untampered_bundle_loads(tmp_path: Path, variant: str) -> None:
    bundle = _variant(tmp_path, variant)
    for name in NPZ_FILES:  # rewriting the arrays unchanged keeps the bundle valid
        if not _variant_arrays(variant, name):
            np.savez(bundle / name, **ORIGINAL[name])
    loaded = Bundle.load(bundle)
    assert loaded.buffer.settings.mode == (variant if variant in VARIANTS else "buffer")
    assert loaded.preprocessor.representation == ("mass" if variant in PREPROCESS_VARIANTS else "energy")
    assert np.all(np.isfinite(loaded.buffer.sample(100, 0)))


@pytest.mark.parametrize(("variant", "name", "key", "mutation"), CASES)
def test_tampered_array_is_refused(tmp_path: Path, variant: str, name: str, key: str, mutation: str) -> None:
    bundle = _tampered(tmp_path, variant, name, key, mutation)
    with pytest.raises(BundleError) as refused:
        Bundle.load(bundle)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{name}' is invalid: array " in message and "eventgen fit" in message
    assert key in message  # the array itself, or the one it must match ("like mu")


CLI_CASES = [
    pytest.param(*case, id=_case_id(*case))
    for case in [
        ("", "cleanup.npz", "eta_cols", "huge"),
        ("", "cleanup.npz", "count_cols", "past_the_end"),
        ("", "buffer.npz", "sigma", "missing_row"),
        ("", "buffer.npz", "sigma", "negative"),
        ("", "buffer.npz", "mu", "header_huge"),
        ("gmm", "buffer.npz", "gmm_means", "missing_row"),
        ("flow", "buffer.npz", "flow_params", "missing_row"),
        ("flow", "buffer.npz", "flow_hidden", "huge"),
        ("", "preprocess.npz", "mean", "nan"),
        ("", "preprocess.npz", "log_mask", "flipped"),
        ("mass", "preprocess.npz", "schema", "renamed"),
        ("", "model.npz", "to_output.weight", "transposed"),
        ("", "model.npz", "decoder.0.bias", "header_one_more"),
        ("", "model.npz", "encoder.0.weight", "object"),
    ]
]


@pytest.mark.parametrize(("variant", "name", "key", "mutation"), CLI_CASES)
def test_generate_refuses_tampered_bundle(
    tmp_path: Path, variant: str, name: str, key: str, mutation: str
) -> None:
    bundle = _tampered(tmp_path, variant, name, key, mutation)
    output = tmp_path / "events.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "eventgen.cli", "generate", str(bundle), "-n", "1000", "-o", str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr  # a negative code would be a signal (a crash)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("eventgen generate: error: "), done.stderr
    assert "Traceback" not in done.stderr and f"array {key!r}" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no output, no temporary file
