"""Tests of eventgen.model: the loss against a hand computation, shapes, settings validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eventgen.errors import ConfigError, InputError
from eventgen.model import (
    MIN_LOGVAR,
    BetaVAE,
    ModelSettings,
    encode_numpy,
    reconstruction_error_numpy,
    vae_loss,
)

SMALL = ModelSettings(latent_dim=3, hidden=16, depth=3)


@pytest.fixture
def model() -> BetaVAE:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BetaVAE(7, SMALL)


def test_loss_matches_hand_computation() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x_hat = torch.tensor([[1.5, 2.0], [3.0, 3.0]])
    mu = torch.tensor([[0.5], [-1.0]])
    logvar = torch.tensor([[0.0], [math.log(2.0)]])
    total, mse, kl = vae_loss(x, x_hat, mu, logvar, beta=0.25)
    mse_hand = (0.25 + 0.0 + 0.0 + 1.0) / 4
    kl_hand = (0.125 + (1.0 - math.log(2.0) / 2)) / 2  # -0.5 (1 + lv - mu^2 - e^lv) per event, batch mean
    assert mse.item() == pytest.approx(mse_hand, rel=1e-6)
    assert kl.item() == pytest.approx(kl_hand, rel=1e-6)
    assert total.item() == pytest.approx(0.75 * mse_hand + 0.25 * kl_hand, rel=1e-6)


def test_kl_sums_over_latent_dimensions_and_averages_over_events() -> None:
    x = torch.zeros(4, 3)
    mu = torch.ones(4, 5) * 2.0  # KL per dimension = mu^2 / 2 = 2
    _, _, kl = vae_loss(x, x, mu, torch.zeros(4, 5), beta=0.5)
    assert kl.item() == pytest.approx(5 * 2.0)
    _, _, kl0 = vae_loss(x, x, torch.zeros(4, 5), torch.zeros(4, 5), beta=0.5)
    assert kl0.item() == 0.0


def test_beta_weights_the_terms() -> None:
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    mu, logvar = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    total1, mse, kl = vae_loss(x, x_hat, mu, logvar, beta=1.0)
    total0, _, _ = vae_loss(x, x_hat, mu, logvar, beta=0.0)
    assert torch.equal(total1, kl) and torch.equal(total0, mse)
    assert mse.item() > 0 and kl.item() > 0


def test_shapes(model: BetaVAE) -> None:
    x = torch.randn(11, 7)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (11, 3)
    assert model.decode(mu).shape == (11, 7)
    x_hat, mu2, logvar2 = model(x)
    assert x_hat.shape == (11, 7) and torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    assert model.reconstruction_error(x).shape == (11,)


def test_reparameterisation_uses_the_generator(model: BetaVAE) -> None:
    x = torch.randn(5, 7)
    a = model(x, generator=torch.Generator().manual_seed(3))[0]
    b = model(x, generator=torch.Generator().manual_seed(3))[0]
    c = model(x, generator=torch.Generator().manual_seed(4))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("residual", [True, False])
def test_depth_counts_dense_layers(residual: bool) -> None:
    m = BetaVAE(7, ModelSettings(latent_dim=3, hidden=16, depth=4, residual=residual))
    n_linear = lambda module: sum(isinstance(layer, torch.nn.Linear) for layer in module.modules())  # noqa: E731
    assert n_linear(m.encoder) == 4 and n_linear(m.decoder) == 4
    x = torch.randn(3, 7)
    assert m(x)[0].shape == (3, 7)


def test_residual_block_adds_its_input() -> None:
    m = BetaVAE(7, ModelSettings(latent_dim=3, hidden=16, depth=2))
    block = m.encoder[2]
    torch.nn.init.zeros_(block.linear.weight)
    torch.nn.init.zeros_(block.linear.bias)
    h = torch.randn(4, 16)
    assert torch.equal(block(h), h)  # elu(0) = 0


def test_tanh_output_is_bounded() -> None:
    m = BetaVAE(7, ModelSettings(latent_dim=3, hidden=16, depth=2, output="tanh"))
    out = m.decode(torch.randn(50, 3) * 100)
    assert out.abs().max() <= 1.0


def test_numpy_helpers(model: BetaVAE) -> None:
    x = np.random.default_rng(0).normal(size=(25, 7)).astype(np.float32)
    mu, sigma = encode_numpy(model, x, batch_size=4)
    assert mu.shape == sigma.shape == (25, 3) and mu.dtype == sigma.dtype == np.float32
    assert (sigma > 0).all()
    with torch.inference_mode():
        mu_t, logvar_t = model.encode(torch.from_numpy(x))
    np.testing.assert_allclose(mu, mu_t.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, torch.exp(0.5 * logvar_t).numpy(), rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        out = model.decode(torch.from_numpy(mu)).numpy()
    err = reconstruction_error_numpy(model, x, batch_size=10)
    assert err.shape == (25,) and err.dtype == np.float32
    np.testing.assert_allclose(err, ((out - x) ** 2).mean(axis=1), rtol=1e-4)
    np.testing.assert_allclose(err, reconstruction_error_numpy(model, x, batch_size=7), rtol=1e-5, atol=1e-7)
    assert reconstruction_error_numpy(model, np.zeros((0, 7), dtype=np.float32)).shape == (0,)
    assert encode_numpy(model, np.zeros((0, 7), dtype=np.float32))[0].shape == (0, 3)
    assert model.training  # the helpers restore the mode they found


def test_encode_numpy_sigma_stays_positive_for_very_sure_events() -> None:
    """A log-variance below about -200 underflows exp() to 0 in float32; sigma must stay > 0."""
    model = BetaVAE(7, SMALL)
    x = np.random.default_rng(1).normal(size=(9, 7)).astype(np.float32)
    with torch.no_grad():
        model.to_logvar.bias.fill_(-500.0)
    _, sigma = encode_numpy(model, x)
    assert (sigma > 0).all() and np.isfinite(sigma).all()
    np.testing.assert_allclose(sigma, np.exp(0.5 * MIN_LOGVAR), rtol=1e-2)


def test_numpy_helpers_check_shapes(model: BetaVAE) -> None:
    with pytest.raises(
        InputError,
        match=r"reconstruction_error_numpy expects an array of shape \(n, 7\), found shape \(4, 3\)",
    ):
        reconstruction_error_numpy(model, np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(InputError, match=r"encode_numpy expects an array of shape \(n, 7\)"):
        encode_numpy(model, np.zeros(7, dtype=np.float32))
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        encode_numpy(model, np.zeros((2, 7), dtype=np.float32), batch_size=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latent_dim": 0}, r"model.latent_dim must be an integer >= 1, found 0"),
        ({"hidden": 2.5}, r"model.hidden must be an integer >= 1"),
        ({"depth": 0}, r"model.depth must be an integer >= 1"),
        ({"beta": 1.5}, r"model.beta must be a number in \[0, 1\], found 1.5"),
        ({"beta": -1e-6}, r"model.beta must be a number in \[0, 1\]"),
        (
            {"activation": "swish"},
            r"model.activation must be one of \['elu', 'relu', 'gelu', 'silu', 'tanh'\]",
        ),
        ({"output": "sigmoid"}, r"model.output must be one of \['linear', 'tanh'\]"),
    ],
)
def test_settings_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ModelSettings(**kwargs)


def test_bad_feature_count() -> None:
    with pytest.raises(ConfigError, match="n_features >= 1, found 0"):
        BetaVAE(0, SMALL)
