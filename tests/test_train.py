"""Tests of eventgen.train: determinism, resume, learning, early stopping and every user error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eventgen.errors import ConfigError, EventgenError, InputError
from eventgen.io import EventTable
from eventgen.model import ModelSettings
from eventgen.schema import Schema
from eventgen.train import CHECKPOINT_NAME, TrainResult, TrainSettings, check_trainable, split_indices, train

TINY = ModelSettings(latent_dim=2, hidden=16, depth=2)
FAST = TrainSettings(epochs=3, batch_size=64, validation_fraction=0.25, threads=1, device="cpu")
SCHEMA = Schema.from_dict({"name": "s", "columns": [{"name": f"c{i}", "kind": "generic"} for i in range(6)]})


def manifold(n: int = 400, seed: int = 0) -> np.ndarray:
    """``(n, 6)`` standardised events on a noisy 2-d manifold: a VAE with 2 latents can learn them."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 2))
    x = np.concatenate([t, np.sin(t), t[:, :1] * t[:, 1:], np.tanh(t[:, :1] + t[:, 1:])], axis=1)
    x += 0.05 * rng.normal(size=x.shape)
    return ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)


def assert_same_weights(a: TrainResult, b: TrainResult) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def losses(result: TrainResult) -> list[tuple]:
    return [
        tuple(v for k, v in h.items() if k not in ("seconds", "events_per_second")) for h in result.history
    ]


def test_same_seed_same_weights_different_seed_differs() -> None:
    x = manifold()
    a, b = train(x, TINY, FAST, seed=7), train(x, TINY, FAST, seed=7)
    assert_same_weights(a, b)
    assert losses(a) == losses(b)
    np.testing.assert_array_equal(a.val_index, b.val_index)
    c = train(x, TINY, FAST, seed=8)
    assert not torch.equal(a.model.to_output.weight, c.model.to_output.weight)
    assert not np.array_equal(a.val_index, c.val_index)


def test_training_leaves_global_torch_state_alone() -> None:
    threads = torch.get_num_threads()
    rng_state = torch.get_rng_state()
    train(manifold(), TINY, FAST, seed=0)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    x = manifold()
    settings = TrainSettings(
        epochs=4, batch_size=64, validation_fraction=0.25, patience_lr=1, threads=1, device="cpu"
    )
    straight = train(x, TINY, settings, seed=3)
    first = train(
        x, TINY, TrainSettings(**{**settings.to_dict(), "epochs": 2}), seed=3, checkpoint_dir=tmp_path
    )
    assert len(first.history) == 2 and (tmp_path / CHECKPOINT_NAME).is_file()
    resumed = train(x, TINY, settings, seed=3, checkpoint_dir=tmp_path)
    assert_same_weights(straight, resumed)
    assert losses(straight) == losses(resumed)
    assert resumed.best_epoch == straight.best_epoch
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary name, then renamed
    again = train(x, TINY, settings, seed=3, checkpoint_dir=tmp_path)  # finished: nothing left to do
    assert_same_weights(straight, again)


def test_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    x = manifold()
    train(x, TINY, FAST, seed=3, checkpoint_dir=tmp_path)
    with pytest.raises(InputError, match="belongs to a run with other data, seed or settings"):
        train(x, TINY, FAST, seed=4, checkpoint_dir=tmp_path)
    with pytest.raises(InputError, match="belongs to a run"):
        train(x[:-1], TINY, FAST, seed=3, checkpoint_dir=tmp_path)
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"cannot read training checkpoint .* delete it to start over"):
        train(x, TINY, FAST, seed=3, checkpoint_dir=tmp_path)


def test_training_learns_a_simple_dataset() -> None:
    x = manifold(2000)
    settings = TrainSettings(epochs=25, batch_size=128, learning_rate=3e-3, threads=1, device="cpu")
    result = train(x, ModelSettings(latent_dim=2, hidden=32, depth=2), settings, seed=0)
    val = [h["val_mse"] for h in result.history]
    assert min(val) < 0.2 < 0.9 < val[0] + 0.9  # unit-variance features: 0.2 means most variance is explained
    assert min(val) < 0.3 * val[0]
    assert result.history[result.best_epoch]["val_loss"] == min(h["val_loss"] for h in result.history)
    assert result.best == result.history[result.best_epoch]
    assert not result.model.training and next(result.model.parameters()).device.type == "cpu"


def test_result_contents() -> None:
    x = manifold(403)
    result = train(x, TINY, FAST, seed=1)
    assert len(result.history) == 3 and [h["epoch"] for h in result.history] == [0, 1, 2]
    assert set(result.history[0]) == {
        "epoch",
        "train_loss",
        "train_mse",
        "train_kl",
        "val_loss",
        "val_mse",
        "val_kl",
        "lr",
        "seconds",
        "events_per_second",
    }
    np.testing.assert_array_equal(
        np.sort(np.concatenate([result.train_index, result.val_index])), np.arange(403)
    )
    assert len(result.val_index) == round(0.25 * 403)
    assert result.events_per_second > 0


def test_plateau_halves_lr_then_stops_early() -> None:
    # a learning rate far below float32 resolution leaves the weights (and so the validation loss) unchanged
    settings = TrainSettings(
        epochs=20,
        batch_size=64,
        learning_rate=1e-20,
        min_lr=1e-30,
        patience_lr=1,
        patience=4,
        threads=1,
        device="cpu",
    )
    result = train(manifold(), TINY, settings, seed=0)
    assert result.stopped_early and result.best_epoch == 0 and result.best == result.history[0]
    assert len(result.history) == 5
    assert [h["lr"] for h in result.history] == pytest.approx([1e-20, 1e-20, 1e-20, 5e-21, 5e-21], rel=1e-12)


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    train(manifold(), TINY, FAST, seed=0, progress=True)
    assert "train" in capsys.readouterr().err


def test_divergence_is_reported() -> None:
    x = manifold() * np.float32(1e20)
    with pytest.raises(EventgenError, match=r"training diverged at epoch 0.*lower train.learning_rate"):
        train(x, TINY, FAST, seed=0)


def test_train_refuses_bad_input() -> None:
    x = manifold()
    x[3, 2] = np.nan
    with pytest.raises(InputError, match="train's input has 1 NaN/inf values, first in column 2 of event 3"):
        train(x, TINY, FAST, seed=0)
    with pytest.raises(InputError, match=r"50 events are too few to train on \(at least 100 needed\)"):
        train(manifold(50), TINY, FAST, seed=0)
    with pytest.raises(InputError, match=r"shape \(n_events, n_features\), found \(400,\)"):
        train(manifold()[:, 0], TINY, FAST, seed=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda() -> None:
    with pytest.raises(ConfigError, match="torch finds no CUDA device; use device auto or cpu"):
        train(manifold(), TINY, TrainSettings(epochs=1, device="cuda"), seed=0)


def test_auto_device_trains() -> None:
    result = train(manifold(), TINY, TrainSettings(epochs=1, batch_size=64, threads=1), seed=0)
    assert result.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(result.model.parameters()).device.type == "cpu"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, r"train.epochs must be an integer >= 1, found 0"),
        ({"batch_size": 1.5}, r"train.batch_size must be an integer >= 1"),
        ({"patience": 0}, r"train.patience must be an integer >= 1"),
        ({"learning_rate": 0.0}, r"train.learning_rate must be a number > 0"),
        ({"min_lr": 1.0}, r"train.min_lr must be in \(0, learning_rate\]"),
        ({"lr_factor": 1.0}, r"train.lr_factor must be in \(0, 1\)"),
        ({"validation_fraction": 1.0}, r"train.validation_fraction must be in \(0, 1\)"),
        ({"validation_fraction": 0}, r"train.validation_fraction must be in \(0, 1\)"),
        ({"threads": 0}, r"train.threads must be an integer >= 1 or null"),
        ({"device": "tpu"}, r"train.device must be one of auto, cpu, cuda, cuda:N; found 'tpu'"),
    ],
)
def test_settings_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainSettings(**kwargs)


def test_split_is_seeded_and_disjoint() -> None:
    a, b = split_indices(100, 0.2, seed=5)
    assert len(b) == 20 and len(a) == 80 and not set(a) & set(b)
    np.testing.assert_array_equal(split_indices(100, 0.2, seed=5)[1], b)
    assert len(split_indices(2, 0.01, seed=0)[1]) == 1 and len(split_indices(2, 0.99, seed=0)[0]) == 1


def test_check_trainable() -> None:
    x = manifold(200)
    check_trainable(x, SCHEMA)
    with pytest.raises(InputError, match=r"events have shape \(200, 5\) but schema 's' has 6 columns"):
        check_trainable(x[:, :5], SCHEMA)
    with pytest.raises(InputError, match=r"50 events are too few to train on \(at least 100 needed\)"):
        check_trainable(x[:50], SCHEMA)
    check_trainable(x[:50], SCHEMA, min_events=50)
    bad = x.copy()
    bad[7, 4] = -np.inf  # refused where the events enter: the table that fit takes
    with pytest.raises(InputError, match="has 1 NaN/inf values, first in column 'c4' of event 7"):
        EventTable(bad, SCHEMA)
    const = x.copy()
    const[:, [1, 3]] = 0.0
    with pytest.raises(InputError, match=r"columns \['c1', 'c3'\] are constant .* drop them"):
        check_trainable(const, SCHEMA)
