"""The fused inference decoder equals the model's decode followed by the inverse preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventgen.decode import CHUNK, EventDecoder
from eventgen.model import BetaVAE, ModelSettings
from eventgen.preprocess import Preprocessor
from eventgen.schema import get_schema


@pytest.mark.parametrize("activation", ["elu", "relu", "silu", "tanh", "gelu"])
@pytest.mark.parametrize(("residual", "output"), [(True, "linear"), (False, "tanh")])
def test_fused_decoder_matches_the_model(
    rng: np.random.Generator, activation: str, residual: bool, output: str
) -> None:
    schema = get_schema("zll")
    x = np.abs(rng.normal(50, 20, size=(500, len(schema)))).astype(np.float32)
    pre = Preprocessor().fit(x, schema)
    torch.manual_seed(0)
    model = BetaVAE(
        len(schema),
        ModelSettings(
            latent_dim=4, hidden=16, depth=3, residual=residual, activation=activation, output=output
        ),
    ).eval()
    z = rng.normal(size=(CHUNK + 77, 4)).astype(np.float32)
    with torch.inference_mode():
        expected = pre.inverse_transform(model.decode(torch.from_numpy(z)).numpy())
    got = EventDecoder(model, pre)(z)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-4)


def test_decoding_is_chunk_stable(rng: np.random.Generator) -> None:
    """Rows depend only on their chunk: decoding a prefix gives the same rows bit for bit."""
    schema = get_schema("zll")
    pre = Preprocessor().fit(np.abs(rng.normal(50, 20, size=(300, len(schema)))).astype(np.float32), schema)
    decoder = EventDecoder(BetaVAE(len(schema), ModelSettings(latent_dim=3, hidden=8, depth=2)).eval(), pre)
    z = rng.normal(size=(3 * CHUNK, 3)).astype(np.float32)
    np.testing.assert_array_equal(decoder(z)[:CHUNK], decoder(z[:CHUNK]))


@pytest.mark.gpu
def test_fused_decoder_on_cuda_matches_cpu(rng: np.random.Generator, cuda_device: str) -> None:
    schema = get_schema("zll")
    pre = Preprocessor().fit(np.abs(rng.normal(50, 20, size=(500, len(schema)))).astype(np.float32), schema)
    torch.manual_seed(0)
    model = BetaVAE(len(schema), ModelSettings(latent_dim=4, hidden=64, depth=4)).eval()
    z = rng.normal(size=(3 * CHUNK + 77, 4)).astype(np.float32)
    on_cpu = EventDecoder(model, pre)(z)
    on_cuda = EventDecoder(model, pre, cuda_device)(z)
    assert on_cuda.dtype == np.float32 and on_cuda.shape == on_cpu.shape
    np.testing.assert_allclose(on_cuda, on_cpu, rtol=1e-4, atol=1e-3)
    assert next(model.parameters()).device.type == "cpu"  # the model itself stays where it was
