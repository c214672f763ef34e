"""The refiner: its trees equal the classifier's, it moves events towards the data, it is
reproducible whatever the batching, and a forged refine state is refused before the kernel runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from eventgen.bundle import Bundle
from eventgen.components import BLOCK
from eventgen.errors import BundleError, ConfigError
from eventgen.generation import EventSource, generate_table
from eventgen.io import read_events
from eventgen.kernels import tree_sum
from eventgen.refine import Refiner, RefineSettings, _flatten, fit_refiner

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FIXTURE = Path(__file__).parent / "data" / "bundle"


@pytest.fixture(scope="module")
def refined(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The fixture bundle with a refiner trained on the committed ttbar sample, saved and loaded."""
    bundle = Bundle.load(FIXTURE)
    events = read_events(Path(__file__).parent / "data" / "ttbar_small.parquet").data
    bundle.refiner = fit_refiner(bundle, events, RefineSettings(quantile=0.7, max_trees=30), seed=2)
    path = tmp_path_factory.mktemp("refined") / "bundle"
    bundle.save(path)
    return Bundle.load(path)


def test_flattened_trees_give_the_classifiers_log_odds(rng: np.random.Generator) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x = rng.normal(size=(3000, 4))
    y = (x[:, 0] + np.sin(3 * x[:, 1]) + rng.normal(0, 0.5, 3000) > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take each node's missing branch
    clf = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    trees = _flatten(clf)
    out = np.full(len(x), float(np.ravel(clf._baseline_prediction)[0]))
    keys = ("roots", "feature", "threshold", "missing_left", "left", "right", "value")
    tree_sum(x, *(trees[k] for k in keys), out)
    np.testing.assert_allclose(out, clf.decision_function(x), rtol=1e-10, atol=1e-10)


def test_the_refiner_moves_generated_events_towards_the_data(ttbar_path: Path) -> None:
    table = read_events(ttbar_path)
    data = table.data
    half = len(data) // 2
    off = data.copy()
    off[:, table.schema.index("j1_pt")] *= 1.15  # a generator whose leading jet is 15% too hard
    off[:, table.schema.index("j1_e")] *= 1.15
    settings = RefineSettings(quantile=0.8)
    refiner = Refiner.fit(data[:half], off[:half], off[half:], table.schema, settings, seed=0)
    u = np.random.default_rng(1).random(len(data) - half)
    kept = off[half:][refiner.accept(off[half:], u)]
    j1 = table.schema.index("j1_pt")
    assert 0.2 < len(kept) / (len(data) - half) < 0.95
    before = abs(np.median(off[half:, j1]) - np.median(data[half:, j1]))
    after = abs(np.median(kept[:, j1]) - np.median(data[half:, j1]))
    assert after < 0.5 * before


def test_a_refined_block_is_its_first_accepted_candidates(refined: Bundle) -> None:
    from eventgen.refine import MAX_CANDIDATE_BLOCKS, uniforms

    source = EventSource(refined, None, 4, device="cpu")
    block = source.batch(BLOCK, 2 * BLOCK, BLOCK)  # output block 1
    n = len(refined.schema)
    first = MAX_CANDIDATE_BLOCKS  # output block 1 starts at candidate block 64
    kept = []
    for c in range(first, first + MAX_CANDIDATE_BLOCKS):
        cand = source.candidates(c * BLOCK, (c + 1) * BLOCK)
        kept.append(cand[refined.refiner.accept(cand[:, :n], uniforms(4, c, BLOCK))])
        if sum(map(len, kept)) >= BLOCK:
            break
    np.testing.assert_array_equal(block, np.concatenate(kept)[:BLOCK])


@pytest.mark.parametrize(("batch_size", "threads"), [(BLOCK, 1), (3 * BLOCK, 2), (1 << 16, 1)])
def test_refined_generation_is_the_same_whatever_the_batching(
    refined: Bundle, batch_size: int, threads: int
) -> None:
    n = 2 * BLOCK + 123
    reference = generate_table(refined, n, seed=9, device="cpu", threads=1, batch_size=n).data
    again = generate_table(refined, n, seed=9, device="cpu", threads=threads, batch_size=batch_size).data
    np.testing.assert_array_equal(again, reference)
    tail = EventSource(refined, None, 9, device="cpu")
    np.testing.assert_array_equal(
        np.concatenate(list(tail.events(BLOCK + 7, n, BLOCK))), reference[BLOCK + 7 :]
    )


def test_refine_false_keeps_every_decoded_event(refined: Bundle) -> None:
    plain = Bundle.load(FIXTURE)
    n = BLOCK + 5
    unrefined = generate_table(refined, n, seed=3, device="cpu", sampling={"refine": False}).data
    np.testing.assert_array_equal(unrefined, generate_table(plain, n, seed=3, device="cpu").data)
    assert not np.array_equal(unrefined, generate_table(refined, n, seed=3, device="cpu").data)


def test_weighted_selection_is_not_refined(refined: Bundle) -> None:
    with pytest.raises(ConfigError, match="no-refine"):
        EventSource(refined, {"selection": "weighted"}, 0, device="cpu")


def test_a_refiner_that_keeps_nothing_is_refused(refined: Bundle) -> None:
    source = EventSource(refined, None, 0, device="cpu")
    source.refiner = Refiner(
        refined.refiner.trees, refined.refiner.columns, refined.schema, refined.refiner.baseline, 1e9
    )
    with pytest.raises(BundleError, match="--no-refine"):
        source.batch(0, BLOCK, 0)


def test_state_round_trip_and_bundle_hash(refined: Bundle, tmp_path: Path) -> None:
    state = refined.refiner.get_state()
    again = Refiner.from_state(state, refined.schema)
    events = generate_table(refined, 500, seed=1, device="cpu", sampling={"refine": False}).data
    np.testing.assert_array_equal(again.log_odds(events), refined.refiner.log_odds(events))
    assert refined.hash != Bundle.load(FIXTURE).hash
    assert "refine" in refined.metadata and refined.metadata["refine"]["trees"] == refined.refiner.n_trees


def _forged(refined: Bundle, **changes: np.ndarray) -> dict[str, np.ndarray]:
    state = {k: v.copy() for k, v in refined.refiner.get_state().items()}
    state.update(changes)
    return state


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {"left": np.where(s["left"] > 0, 0, s["left"])}, "child must follow its parent"),
        (lambda s: {"right": np.where(s["right"] > 0, len(s["right"]) + 5, s["right"])}, "right"),
        (lambda s: {"feature": s["feature"] + 10_000}, "feature"),
        (lambda s: {"columns": s["columns"][::-1].copy()}, "increasing"),
        (lambda s: {"roots": s["roots"] + len(s["left"])}, "roots"),
        (lambda s: {"scalars": np.array([3.0, 0.0, 0.0])}, "features"),
        (lambda s: {"threshold": np.full_like(s["threshold"], np.nan)}, "NaN"),
        (lambda s: {"value": s["value"][:-1].copy()}, "one per node"),
        (lambda s: {"codes": np.r_[s["codes"], s["codes"][:1]]}, "increasing"),
        (lambda s: {"log_caps": np.r_[s["log_caps"], 0.0]}, "one per stratum"),
        (lambda s: {"codes": -1 - s["codes"]}, "codes"),
    ],
)
def test_a_forged_refine_state_is_refused(refined: Bundle, change, message: str) -> None:  # type: ignore[no-untyped-def]
    state = _forged(refined, **change(refined.refiner.get_state()))
    with pytest.raises(BundleError, match=message):
        Refiner.from_state(state, refined.schema)


def test_a_bundle_with_a_corrupt_refiner_is_refused(refined: Bundle, tmp_path: Path) -> None:
    assert refined.path is not None
    path = tmp_path / "bundle"
    shutil.copytree(refined.path, path)
    state = _forged(refined, feature=np.full_like(refined.refiner.trees["feature"], 999))
    np.savez(path / "refine.npz", **state)
    with pytest.raises(BundleError, match="feature"):
        Bundle.load(path)


def test_refine_settings_from_a_config() -> None:
    assert RefineSettings.from_mapping(False) == RefineSettings(enabled=False)
    assert RefineSettings.from_mapping(None) == RefineSettings()
    assert RefineSettings.from_mapping({"quantile": 0.9}).quantile == 0.9
    assert RefineSettings.from_mapping({"generated": 1}).generated == 1
    with pytest.raises(ConfigError, match="generated=0"):
        RefineSettings(generated=0)
    with pytest.raises(ConfigError, match="unknown key refine.quant"):
        RefineSettings.from_mapping({"quant": 0.9})
    for bad in (0, 1, 1.5, "0.8", True):
        with pytest.raises(ConfigError, match="quantile"):
            RefineSettings(quantile=bad)  # type: ignore[arg-type]


def test_a_weighted_default_selection_is_not_refined(ttbar_path: Path) -> None:
    from eventgen.fitting import fit

    with pytest.raises(ConfigError, match="refine: false"):
        fit(ttbar_path, epochs=1, selection="weighted", weight_column="met")


def test_a_bundle_fitted_without_a_refiner_stores_unrefined_sampling(
    ttbar_path: Path, tmp_path: Path
) -> None:
    import json

    from eventgen.bundle import describe_bundle
    from eventgen.fitting import fit

    fit(ttbar_path, epochs=1, refine=False).save(tmp_path / "bundle")
    loaded = Bundle.load(tmp_path / "bundle")
    assert loaded.refiner is None and loaded.buffer.settings.refine is False
    text = describe_bundle(tmp_path / "bundle", json.loads((tmp_path / "bundle" / "bundle.json").read_text()))
    assert "'refine': False" in text and "refiner     none" in text


def test_the_kept_events_have_the_training_events_multiplicities(refined: Bundle) -> None:
    """Each stratum (counts and lepton flavours) keeps in proportion to its share of the training
    events over its share of the generated events the caps were set on, so the kept events have
    the training multiplicities. A refiner saved without the training strata keeps the same
    fraction of every stratum, so its kept events have the generator's."""
    from eventgen.refine import strata

    refiner = refined.refiner
    data = strata(read_events(Path(__file__).parent / "data" / "ttbar_small.parquet").data, refined.schema)
    assert refiner.data_strata is not None and refiner.pool is not None
    np.testing.assert_array_equal(refiner.data_strata, data)
    source = EventSource(refined, {"refine": False}, 5, device="cpu")
    pool = source.candidates(0, 16 * BLOCK)
    u = np.random.default_rng(0).random(len(pool))
    code = strata(pool, refined.schema)
    common = refiner.codes[[np.count_nonzero(code == c) >= 2000 for c in refiner.codes]]
    assert len(common) >= 3
    ratio = np.array([np.mean(data == c) / np.mean(refiner.pool[1] == c) for c in common])
    assert ratio.max() / ratio.min() > 1.2  # the generator's multiplicities are not the training ones
    kept = refiner.accept(pool, u)
    fractions = np.array([kept[code == c].mean() for c in common])
    np.testing.assert_allclose(fractions / fractions.max(), ratio / ratio.max(), atol=0.05)

    def distance(codes: np.ndarray) -> float:  # from the training shares, over the common strata
        return float(sum(abs(np.mean(codes == c) - np.mean(data == c)) for c in common))

    assert distance(code[kept]) < 0.5 * distance(code)
    state = {k: v for k, v in refiner.get_state().items() if k != "data_strata"}
    older = Refiner.from_state(state, refined.schema).with_quantile(0.7)
    kept = older.accept(pool, u)
    fractions = np.array([kept[code == c].mean() for c in common])
    assert fractions.max() - fractions.min() < 0.05


def test_the_generate_command_says_when_events_are_refined(
    refined: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its summary line names the refinement and the fast preset, and only when the run refines."""
    from eventgen.cli import main

    args = ["generate", str(refined.path), "-n", "100", "--device", "cpu", "--threads", "1"]
    assert main([*args, "-o", str(tmp_path / "refined.parquet")]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        "wrote 100 events" in summary and "refined" in summary and "--no-refine is the fast preset" in summary
    )
    assert main([*args, "-o", str(tmp_path / "plain.parquet"), "--no-refine"]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "wrote 100 events" in summary and "refined" not in summary


def test_a_run_config_that_weights_a_refined_bundle_is_refused(tmp_path: Path) -> None:
    """Refused when the config is read, not after the simulation and the fit."""
    from eventgen.run import load_run_job

    text = (Path(__file__).parents[1] / "configs" / "default.yaml").read_text()
    text = text.replace(
        "  buffer: {mode: buffer, alpha: 1.0, gamma: 0.2}", "  buffer: {gamma: 0.2, weight_column: met}"
    )
    weighted = text.replace("  gamma: 0.2 ", "  selection: weighted\n  gamma: 0.2 ", 1)
    assert "weight_column: met" in weighted and "selection: weighted" in weighted
    config = tmp_path / "run.yaml"
    config.write_text(weighted)
    with pytest.raises(ConfigError, match="add refine: false to the generate section"):
        load_run_job(str(config))
    config.write_text(weighted.replace("  selection: weighted\n", "  selection: weighted\n  refine: false\n"))
    assert load_run_job(str(config)).generate.sampling.refine is False


def test_generation_sets_the_cap_at_another_quantile(refined: Bundle) -> None:
    """The cap set again at the fit's quantile is the stored one; a lower quantile keeps more
    candidates, a higher one fewer, and each run is reproducible."""
    source = EventSource(refined, {"refine": False}, 6, device="cpu")
    pool = source.candidates(0, 4 * BLOCK)
    u = np.random.default_rng(0).random(len(pool))
    same = refined.refiner.with_quantile(0.7)  # the fixture's fit quantile
    assert same.log_cap == refined.refiner.log_cap
    np.testing.assert_array_equal(same.log_caps, refined.refiner.log_caps)
    kept = {q: refined.refiner.with_quantile(q).accept(pool, u).mean() for q in (0.3, 0.7, 0.9)}
    assert kept[0.3] > kept[0.7] + 0.05 and kept[0.9] < kept[0.7] - 0.05
    n = BLOCK + 11
    low = generate_table(refined, n, seed=3, device="cpu", sampling={"refine_quantile": 0.3}).data
    again = generate_table(
        refined, n, seed=3, device="cpu", sampling={"refine_quantile": 0.3}, batch_size=BLOCK
    )
    np.testing.assert_array_equal(low, again.data)
    assert not np.array_equal(low, generate_table(refined, n, seed=3, device="cpu").data)


def test_a_refine_quantile_needs_a_refiner_that_kept_its_log_odds(refined: Bundle) -> None:
    with pytest.raises(ConfigError, match="refine_quantile applies to refined generation only"):
        EventSource(refined, {"refine": False, "refine_quantile": 0.5}, 0, device="cpu")
    with pytest.raises(ConfigError, match="refine_quantile=1.0 is invalid"):
        EventSource(refined, {"refine_quantile": 1.0}, 0, device="cpu")
    with pytest.raises(ConfigError, match="no refiner"):
        EventSource(Bundle.load(FIXTURE), {"refine_quantile": 0.5}, 0, device="cpu")
    state = {k: v for k, v in refined.refiner.get_state().items() if not k.startswith("pool_")}
    older = Refiner.from_state(state, refined.schema)  # a refiner saved before the pool was kept
    with pytest.raises(BundleError, match="fit the bundle again"):
        older.with_quantile(0.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {"pool_log_odds": np.full_like(s["pool_log_odds"], np.inf)}, "pool_log_odds"),
        (lambda s: {"pool_strata": s["pool_strata"][1:].copy()}, "one per pool log-odds"),
        (lambda s: {"pool_strata": -1 - s["pool_strata"]}, "pool_strata"),
        (lambda s: {"data_strata": -1 - s["data_strata"]}, "data_strata"),
        (lambda s: {"data_strata": s["data_strata"].astype(np.float64)}, "data_strata"),
    ],
)
def test_a_forged_pool_is_refused(refined: Bundle, change, message: str) -> None:  # type: ignore[no-untyped-def]
    state = _forged(refined, **change(refined.refiner.get_state()))
    with pytest.raises(BundleError, match=message):
        Refiner.from_state(state, refined.schema)


def test_a_run_config_sets_the_refine_quantile_only_with_a_refiner(tmp_path: Path) -> None:
    from eventgen.run import load_run_job

    text = (Path(__file__).parents[1] / "configs" / "default.yaml").read_text()
    dialled = text.replace("  gamma: 0.2 ", "  refine_quantile: 0.5\n  gamma: 0.2 ", 1)
    config = tmp_path / "run.yaml"
    config.write_text(dialled)
    assert load_run_job(str(config)).generate.sampling.refine_quantile == 0.5
    config.write_text(dialled.replace("  refine: {quantile: 0.7}", "  refine: false"))
    with pytest.raises(ConfigError, match="refine_quantile needs a refiner"):
        load_run_job(str(config))
