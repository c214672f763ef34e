"""The seed talk's toolkit: anomaly scores (eventgen.anomaly), compression, denoising, latent
exploration and the β scan (eventgen.latent), on a small bundle fitted from the committed sample."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from eventgen.anomaly import anomaly_scores, to_schema, write_scores
from eventgen.bundle import Bundle
from eventgen.errors import ConfigError, InputError, OutputError
from eventgen.fitting import fit
from eventgen.io import EventTable, read_events, write_events
from eventgen.latent import (
    LATENT_FORMAT,
    add_noise,
    beta_scan,
    decode,
    denoise,
    encode,
    format_beta_table,
    latent_pca,
    latent_schema,
    plot_latent,
    read_latent,
    traverse,
    write_latent,
)
from eventgen.metrics import physicality
from eventgen.model import ModelSettings
from eventgen.schema import Column, Schema, get_schema
from eventgen.train import TrainSettings

LATENT = 6
SETTINGS = ModelSettings(latent_dim=LATENT, hidden=32, depth=2)
# 3 epochs (~30 optimiser steps) leave the model nearly untrained; 20 take ~0.3 s
TRAIN = TrainSettings(epochs=20, batch_size=256, device="cpu", threads=1)


@pytest.fixture(scope="module")
def table(ttbar_path: Path) -> EventTable:
    return read_events(ttbar_path)


@pytest.fixture(scope="module")
def bundle(table: EventTable, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    fitted = fit(table, model_settings=SETTINGS, train_settings=TRAIN, seed=3)
    fitted.save(tmp_path_factory.mktemp("toolkit") / "bundle")
    return fitted


@pytest.fixture(scope="module")
def zll_as_ttbar(zll_path: Path) -> EventTable:
    return to_schema(read_events(zll_path), get_schema("ttbar"))


# ----------------------------------------------------------------------------- anomaly scores


def test_scores_have_one_finite_value_per_event(bundle: Bundle, table: EventTable) -> None:
    scores = anomaly_scores(bundle, table.data[:500])
    assert set(scores) == {"reconstruction", "neg_elbo"}
    for values in scores.values():
        assert values.shape == (500,) and values.dtype == np.float32
        assert np.all(np.isfinite(values))
    assert np.all(scores["reconstruction"] >= 0)
    beta = SETTINGS.beta  # KL >= 0, so the negative ELBO is at least the weighted MSE
    assert np.all(scores["neg_elbo"] >= (1 - beta) * scores["reconstruction"] * (1 - 1e-6))
    again = anomaly_scores(bundle, table.data[:500])
    np.testing.assert_array_equal(again["neg_elbo"], scores["neg_elbo"])


@pytest.mark.parametrize("kind", ["energies_x10", "zll"])
@pytest.mark.parametrize("score", ["reconstruction", "neg_elbo"])
def test_altered_events_score_higher(
    bundle: Bundle, table: EventTable, zll_as_ttbar: EventTable, kind: str, score: str
) -> None:
    if kind == "zll":
        other = zll_as_ttbar.data
    else:
        other = table.data.copy()
        other[:, bundle.schema.indices_of_kind("energy")] *= 10  # x5 gives AUC 0.81-0.84 only
    normal = anomaly_scores(bundle, table.data)[score]
    odd = anomaly_scores(bundle, other)[score]
    auc = roc_auc_score(np.r_[np.zeros(len(normal)), np.ones(len(odd))], np.r_[normal, odd])
    assert odd.mean() > normal.mean()
    assert auc > 0.8


def test_to_schema_copies_shared_columns_and_zero_fills(zll_path: Path, zll_as_ttbar: EventTable) -> None:
    zll = read_events(zll_path)
    ttbar = get_schema("ttbar")
    assert zll_as_ttbar.data.shape == (len(zll), len(ttbar))
    for j, name in enumerate(ttbar.names):
        expected = zll.column(name) if name in zll.schema.names else 0.0
        np.testing.assert_array_equal(zll_as_ttbar.data[:, j], expected)


def test_to_schema_refuses_incompatible_schemas(table: EventTable, zll_path: Path) -> None:
    with pytest.raises(InputError, match="lacks"):
        to_schema(table, get_schema("zll"))
    zll = read_events(zll_path)
    energy_only = EventTable(zll.data[:, :1], Schema("e", (zll.schema.columns[0],)))
    with pytest.raises(InputError, match="kind 'energy'.*incompatible"):
        to_schema(energy_only, Schema("odd", (Column("l1_e", "generic"),)))


def test_wrong_number_of_columns_is_refused(bundle: Bundle, zll_path: Path) -> None:
    zll = read_events(zll_path).data
    for func in (anomaly_scores, encode, denoise):
        with pytest.raises(InputError, match=r"shape \(n, 28\).*eventgen\.anomaly\.to_schema$") as info:
            func(bundle, zll)
        module, name = str(info.value).rsplit(" ", 1)[1].rsplit(".", 1)
        assert getattr(importlib.import_module(module), name) is to_schema  # the advice names a real function
    with pytest.raises(InputError, match=r"shape \(n, 6\)"):
        decode(bundle, np.zeros((3, 5), np.float32))


def test_scores_file_round_trip(bundle: Bundle, table: EventTable, tmp_path: Path) -> None:
    scores = anomaly_scores(bundle, table.data[:100])
    ids = np.arange(1000, 1100)
    path = write_scores(tmp_path / "scores.parquet", scores, ids)
    back = read_events(path)
    assert back.schema.names == ["event", "reconstruction", "neg_elbo"]
    np.testing.assert_array_equal(back.column("event"), ids)
    np.testing.assert_array_equal(back.column("neg_elbo"), scores["neg_elbo"])
    with pytest.raises(OutputError, match="exists already"):
        write_scores(path, scores, ids)
    with pytest.raises(OutputError, match="exactly as float32"):
        write_scores(tmp_path / "big.parquet", scores, ids + 2**24)


# ----------------------------------------------------------------------------- compression and denoising


def test_reconstruction_is_closer_than_another_event(
    bundle: Bundle, table: EventTable, rng: np.random.Generator
) -> None:
    x = table.data[:1000]
    mu, sigma = encode(bundle, x)
    assert mu.shape == sigma.shape == (1000, LATENT) and mu.dtype == np.float32
    assert np.all(sigma > 0)
    rebuilt = decode(bundle, mu)
    assert rebuilt.shape == x.shape and rebuilt.dtype == np.float32
    pre = bundle.preprocessor.transform
    own = np.mean((pre(rebuilt) - pre(x)) ** 2, axis=1)
    other = np.mean((pre(x[rng.permutation(len(x))]) - pre(x)) ** 2, axis=1)
    assert np.median(own) < 0.5 * np.median(other)


def test_latent_file_round_trip_is_exact(bundle: Bundle, table: EventTable, tmp_path: Path) -> None:
    mu, sigma = encode(bundle, table.data[:300])
    path = write_latent(tmp_path / "z.parquet", bundle, mu, sigma)
    mu_back, sigma_back = read_latent(path, bundle)
    np.testing.assert_array_equal(mu_back, mu)
    np.testing.assert_array_equal(sigma_back, sigma)
    only = write_latent(tmp_path / "z.h5", bundle, mu)
    mu_h5, none = read_latent(only, bundle)
    np.testing.assert_array_equal(mu_h5, mu)
    assert none is None
    assert read_events(only).schema.names == [f"z{i}" for i in range(LATENT)]


def test_latent_file_of_another_bundle_is_refused(bundle: Bundle, table: EventTable, tmp_path: Path) -> None:
    mu, _ = encode(bundle, table.data[:50])
    other = Bundle.load(bundle.path)
    other.metadata["note"] = "another bundle"
    other.save(tmp_path / "other")
    path = write_latent(tmp_path / "z.parquet", other, mu)
    with pytest.raises(InputError, match="written by bundle .*decode it with the bundle that encoded it"):
        read_latent(path, bundle)
    meta = {"format": LATENT_FORMAT, "bundle_hash": bundle.hash, "latent_dim": 5}
    narrow = write_events(tmp_path / "narrow.parquet", mu[:, :5], latent_schema(5, False), meta)
    with pytest.raises(InputError, match="latent dimension 5, the bundle has 6"):
        read_latent(narrow, bundle)
    events = write_events(tmp_path / "events.parquet", table.data[:5], table.schema)
    with pytest.raises(InputError, match="not an eventgen latent file"):
        read_latent(events, bundle)


def test_denoised_events_are_physical(bundle: Bundle, table: EventTable) -> None:
    clean = table.data[:1000]
    noisy = add_noise(clean, table.schema, np.random.default_rng(5))
    out = denoise(bundle, noisy)
    assert out.shape == clean.shape
    assert physicality(out, table.schema)["all"] == 1.0


def test_denoise_returns_each_event_in_its_own_frame(bundle: Bundle, table: EventTable) -> None:
    """The bundle models the canonical frame; a turned and mirrored event is denoised turned and mirrored."""
    from eventgen.representation import wrap

    assert bundle.preprocessor.frame == "canonical"
    schema = table.schema
    events = table.data[:1000]
    n_objects = (events[:, [o.pt for o in schema.objects()]] > 0).sum(axis=1)
    events = events[n_objects >= 2]  # the frame of an event with fewer objects is not unique
    phi, eta = schema.indices_of_kind("phi"), schema.indices_of_kind("eta")
    present = events[:, phi] != 0  # no object sits exactly at phi = 0 in this sample
    turned = events.copy()
    turned[:, phi] = np.where(present, wrap(-events[:, phi].astype(np.float64) + 1.0), 0.0)
    turned[:, eta] = -events[:, eta]
    out, out_turned = denoise(bundle, events), denoise(bundle, turned)
    expected = np.where(out[:, phi] != 0, wrap(-out[:, phi].astype(np.float64) + 1.0), 0.0)
    np.testing.assert_allclose(wrap(out_turned[:, phi] - expected), 0.0, atol=1e-4)
    np.testing.assert_allclose(out_turned[:, eta], -out[:, eta], atol=1e-4)
    others = np.setdiff1d(np.arange(len(schema)), np.r_[phi, eta])
    np.testing.assert_allclose(out_turned[:, others], out[:, others], rtol=1e-4, atol=1e-3)
    # the leading object keeps its own azimuth (a random frame would spread it over 2 pi)
    lead = np.argmax(events[:, [o.pt for o in schema.objects()]], axis=1)
    lead_phi = np.array([o.phi for o in schema.objects()])[lead]
    rows = np.arange(len(events))
    shift = np.abs(wrap(out[rows, lead_phi].astype(np.float64) - events[rows, lead_phi]))
    assert np.median(shift) < 0.6  # a random frame: pi / 2


def test_add_noise_leaves_absent_objects_and_counts_alone(table: EventTable) -> None:
    clean = table.data[:1000]
    noisy = add_noise(clean, table.schema, np.random.default_rng(5))
    np.testing.assert_array_equal(noisy, add_noise(clean, table.schema, np.random.default_rng(5)))
    assert not np.array_equal(noisy, clean)
    np.testing.assert_array_equal(noisy == 0, clean == 0)
    counts = table.schema.indices_of_kind("count")
    np.testing.assert_array_equal(noisy[:, counts], clean[:, counts])
    pt = table.schema.index("j1_pt")
    rel = (noisy[:, pt] - clean[:, pt])[clean[:, pt] > 0] / clean[:, pt][clean[:, pt] > 0]
    assert abs(np.std(rel) - 0.1) < 0.01


# ----------------------------------------------------------------------------- latent exploration


def test_pca_of_the_buffer(bundle: Bundle) -> None:
    components, ratio, projected = latent_pca(bundle, 3)
    assert components.shape == (3, LATENT) and projected.shape == (len(bundle.buffer.mu_), 3)
    assert np.all(np.diff(ratio) <= 0) and ratio.sum() <= 1 + 1e-6
    np.testing.assert_allclose(components @ components.T, np.eye(3), atol=1e-5)
    with pytest.raises(ConfigError, match="n_components must be in"):
        latent_pca(bundle, LATENT + 1)


def test_traversal_decodes_along_an_axis(bundle: Bundle) -> None:
    events = traverse(bundle, 1, [-2.0, 0.0, 2.0])
    assert events.shape == (3, len(bundle.schema))
    centre = decode(
        bundle, bundle.buffer.mu_.astype(np.float64).mean(axis=0, keepdims=True).astype(np.float32)
    )
    np.testing.assert_allclose(events[1], centre[0], rtol=1e-4, atol=1e-3)
    assert not np.allclose(events[0], events[2])
    with pytest.raises(ConfigError, match=r"component must be an integer in \[0, 6\)"):
        traverse(bundle, LATENT, [0.0])


def test_plots_are_written(
    bundle: Bundle, table: EventTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    paths = plot_latent(bundle, table.data, tmp_path / "plots", max_points=500)
    for path in paths:
        assert path.suffix == ".png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OutputError, match="exist already"):
        plot_latent(bundle, table.data, tmp_path / "plots")
    decoded = plot_latent(bundle, None, tmp_path / "decoded", max_points=500, steps=[-1.0, 1.0])
    assert all(p.stat().st_size > 0 for p in decoded)
    with pytest.raises(InputError, match="training events in their original order"):
        plot_latent(bundle, table.data[:10], tmp_path / "short")


def test_plots_without_matplotlib_say_what_to_install(
    bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install 'eventgen\[plots\]'"):
        plot_latent(bundle, None, tmp_path)


# ----------------------------------------------------------------------------- β scan


def test_beta_scan_latent_variance_grows_with_beta(
    table: EventTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventgen.fitting

    fitted: list[Bundle] = []

    def fit_and_keep(*args: Any, **kwargs: Any) -> Bundle:
        fitted.append(fit(*args, **kwargs))
        return fitted[-1]

    monkeypatch.setattr(eventgen.fitting, "fit", fit_and_keep)
    # a reference with every energy and pT ten times larger: no bundle fitted on table can match it
    far = table.data.copy()
    far[:, np.r_[table.schema.indices_of_kind("energy"), table.schema.indices_of_kind("pt")]] *= 10
    # after 2-10 epochs the variances differ by < 20%; after 30, by 6-10x (seeds 1-3)
    train = TrainSettings(epochs=30, batch_size=256, device="cpu", threads=1)
    rows = beta_scan(
        table,
        [1e-6, 1e-2],
        model_settings=SETTINGS,
        train_settings=train,
        seed=1,
        reference=far,
        n_generate=1000,
    )
    assert [r["beta"] for r in rows] == [1e-6, 1e-2]
    assert rows[0]["avg_variance"] < 0.5 * rows[1]["avg_variance"]
    assert rows[0]["avg_abs_mean"] > rows[1]["avg_abs_mean"]
    losses = ("val_loss", "val_mse", "val_kl")
    for row, bundle in zip(rows, fitted, strict=True):
        best = min(bundle.metadata["training"]["history"], key=lambda h: h["val_loss"])
        assert [row[k] for k in losses] == [best[k] for k in losses]  # the best-validation epoch's
        assert row["auc"] > 0.99 and row["mean_w1"] > 0.1 and row["val_kl"] >= 0  # separable: AUC ≈ 1
    text = format_beta_table(rows)
    assert text.splitlines()[0].startswith("| β | avg var | avg mean |")
    assert "| 1e-06 |" in text and "| 0.01 |" in text


@pytest.mark.parametrize(
    ("betas", "message"), [([], "at least one β"), ([0.1, 1.5], r"in \[0, 1\]"), ([-0.1], r"\[-0.1\]")]
)
def test_beta_scan_refuses_bad_betas(table: EventTable, betas: list[float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        beta_scan(table, betas, model_settings=SETTINGS, train_settings=TRAIN)
