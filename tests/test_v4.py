"""The macaque-V4 encoding model: shapes, Gaussian readout vs its formula, weights round trip."""

import lit3d  # noqa: F401, I001

import math

import pytest
import torch
import torch.nn.functional as F

from lit3d.models.v4 import GaussianReadout, V4EncodingModel
from lit3d.models.weights import WeightsError


def bilinear_align_corners(fmap: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """(C, H, W) feature map read at (x, y) in [-1, 1]² with corners at pixel centres."""
    _, h, w = fmap.shape
    px, py = (x + 1) / 2 * (w - 1), (y + 1) / 2 * (h - 1)
    x0, y0 = math.floor(px), math.floor(py)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = px - x0, py - y0
    return ((1 - ax) * (1 - ay) * fmap[:, y0, x0] + ax * (1 - ay) * fmap[:, y0, x1]
            + (1 - ax) * ay * fmap[:, y1, x0] + ax * ay * fmap[:, y1, x1])


def test_readout_equals_the_published_formula():
    torch.manual_seed(0)
    readout = GaussianReadout(in_channels=3, num_neurons=4).eval()
    readout._mu.data = torch.tensor([[[[-0.9, 0.3]], [[0.0, 0.0]], [[0.55, -0.7]], [[1.4, 0.2]]]])
    readout._features.data.normal_()
    readout.bias.data.normal_()
    fmap = torch.randn(2, 3, 5, 6)
    out = readout(fmap)
    assert out.shape == (2, 4)
    for b in range(2):
        for n in range(4):
            x, y = readout._mu[0, n, 0].clamp(-1, 1).tolist()  # positions clamp to the map
            value = bilinear_align_corners(fmap[b], x, y)
            expected = (readout.features[0, :, 0, n] * value).sum() + readout.bias[n]
            assert out[b, n].item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.filterwarnings("ignore:Readout is NOT initialized")
def test_readout_matches_neuralpredictors_full_gaussian2d_when_installed():
    readouts = pytest.importorskip("neuralpredictors.layers.readouts")
    torch.manual_seed(0)
    ours = GaussianReadout(in_channels=8, num_neurons=5).eval()
    ours._features.data.normal_()
    ours.bias.data.normal_()
    theirs = readouts.FullGaussian2d(in_shape=(8, 7, 7), outdims=5, bias=True,
                                     gauss_type="isotropic", init_mu_range=0.4, init_sigma=0.6)
    theirs.load_state_dict(ours.state_dict())
    theirs.eval()
    x = torch.randn(3, 8, 7, 7)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_readout_samples_positions_around_mu_in_training():
    torch.manual_seed(0)
    readout = GaussianReadout(in_channels=2, num_neurons=3, init_mu_range=0.1, init_sigma=0.2)
    with torch.no_grad():
        grid = readout.grid(20000, sample=True)
    assert grid.mean(0).flatten().tolist() == pytest.approx(readout.mu.flatten().tolist(), abs=0.01)
    assert grid.std(0).flatten().tolist() == pytest.approx([0.2] * 6, abs=0.01)
    assert torch.equal(readout.grid(5, sample=False), readout.mu.expand(5, -1, -1, -1))
    assert readout.features.shape == (1, 2, 1, 3) and readout.sigma.shape == (1, 3, 1, 1)


def test_model_shapes_selection_and_positive_rates():
    torch.manual_seed(0)
    model = V4EncodingModel(num_neurons=12, neurons=[3, 7, 11])
    assert model.core(torch.zeros(1, 3, 100, 100)).shape == (1, 1024, 7, 7)
    images = torch.rand(2, 3, 64, 80)
    rates = model(images)
    assert rates.shape == (2, 3) and model.num_outputs == 3
    assert (rates > 0).all()
    full = V4EncodingModel(num_neurons=12)
    full.load_state_dict(model.state_dict())
    assert torch.allclose(full(images)[:, [3, 7, 11]], rates)
    # The response is ELU(readout - 1) + 1 of the core's features.
    inputs = model.preprocess(images)
    linear = model.readout(model.core(inputs.repeat(1, 3, 1, 1)))
    assert torch.allclose(rates, (F.elu(linear - 1) + 1)[:, [3, 7, 11]])
    with pytest.raises(ValueError, match="out of range"):
        V4EncodingModel(num_neurons=12, neurons=[12])


def test_preprocessing_is_grayscale_100px_standardized_then_norm_25():
    grey = torch.full((1, 3, 40, 40), 0.7)
    raw = V4EncodingModel(num_neurons=1, norm=None).preprocess(grey)
    assert raw.shape == (1, 1, 100, 100)
    assert torch.allclose(raw, torch.tensor((0.7 * 255 - 124.54) / 70.28), atol=1e-4)
    scaled = V4EncodingModel(num_neurons=1).preprocess(torch.rand(2, 3, 50, 50))
    assert torch.linalg.vector_norm(scaled.flatten(1), dim=1).tolist() == pytest.approx([25, 25])


def test_state_dict_round_trips_through_a_file(tmp_path):
    torch.manual_seed(3)
    model = V4EncodingModel(num_neurons=5)
    model.readout._mu.data.uniform_(-0.5, 0.5)
    model.readout._features.data.normal_()
    path = tmp_path / "v4.pt"
    torch.save(model.state_dict(), path)
    loaded = V4EncodingModel(num_neurons=5, neurons=[0, 4], weights=str(path))
    images = torch.rand(2, 3, 100, 100)
    assert torch.allclose(loaded(images), model(images)[:, [0, 4]])
    with pytest.raises(WeightsError, match="num_neurons"):
        V4EncodingModel(num_neurons=6, weights=str(path))


def test_core_initializes_from_a_robust_resnet50_checkpoint(tmp_path):
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    state = {f"module.model.{k}": v for k, v in resnet.state_dict().items()}
    state["module.attacker.model.conv1.weight"] = torch.zeros(64, 3, 7, 7)
    state["module.normalizer.new_mean"] = torch.zeros(3, 1, 1)
    path = tmp_path / "resnet50_l2_eps0.1.ckpt"
    torch.save({"model": state, "epoch": 90}, path)
    model = V4EncodingModel(num_neurons=2, core_weights=str(path))
    assert torch.equal(model.core.conv1.weight, resnet.conv1.weight)
    assert torch.equal(model.core.layer3[0].conv2.weight, resnet.layer3[0].conv2.weight)
