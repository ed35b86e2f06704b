"""The macaque-V4 encoding model of Willeke et al. (2023) / Pierzchlewicz et al. (2023).

Published configuration (``../shared/NOTES.md``): an adversarially robust ResNet50 (L2, ε = 0.1)
cut after ``layer3.0`` (1024 channels), a final BatchNorm + ReLU, and an isotropic Gaussian readout
per neuron (``init_mu_range=0.4``, ``init_sigma=0.6``, bias) followed by ``ELU(x − 1) + 1``.
Input: one grayscale channel, 100 × 100 pixels, in [0, 255] standardized with mean 124.54 and
std 70.28 (and, for MEIs, rescaled to L2 norm 25); the core repeats the channel three times.
1244 neurons. The trained weights are not public: load them with ``weights: /path/to/state.pt``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit3d.models.base import ResponseModel
from lit3d.models.preprocessing import ImageNormalizer, resize, to_grayscale
from lit3d.models.weights import WeightsError, load_weights


class GaussianReadout(nn.Module):
    """Isotropic Gaussian readout (Lurz et al. 2021; ``FullGaussian2d`` with
    ``gauss_type='isotropic'`` in neuralpredictors, same parameter names and shapes).

    Neuron ``n`` reads the core's feature map at one position ``p_n`` in [-1, 1]² (x, y;
    ``grid_sample`` with ``align_corners=True``, bilinear), ``y_n = Σ_c w_cn · x_c(p_n) + b_n``.
    In training ``p_n = clamp(μ_n + σ_n ε, -1, 1)`` with ε ~ N(0, I); in eval ``p_n = μ_n``.

    Parameters (neuralpredictors' names, so its state dicts load): ``_mu`` (1, N, 1, 2), ``sigma``
    (1, N, 1, 1), ``_features`` (1, C, 1, N), ``bias`` (N,).
    """

    def __init__(self, in_channels: int, num_neurons: int, init_mu_range: float = 0.4,
                 init_sigma: float = 0.6, bias: bool = True):
        super().__init__()
        if in_channels <= 0 or num_neurons <= 0:
            raise ValueError("in_channels and num_neurons must be > 0")
        if not 0 < init_mu_range <= 1 or init_sigma <= 0:
            raise ValueError("need 0 < init_mu_range <= 1 and init_sigma > 0")
        self._mu = nn.Parameter(torch.empty(1, num_neurons, 1, 2).uniform_(-init_mu_range,
                                                                           init_mu_range))
        self.sigma = nn.Parameter(torch.full((1, num_neurons, 1, 1), float(init_sigma)))
        self._features = nn.Parameter(torch.full((1, in_channels, 1, num_neurons), 1 / in_channels))
        self.bias = nn.Parameter(torch.zeros(num_neurons)) if bias else None

    @property
    def features(self) -> Tensor:
        """(1, C, 1, N) per-neuron feature weights."""
        return self._features

    @property
    def mu(self) -> Tensor:
        """(1, N, 1, 2) mean positions, clamped to the feature map."""
        return self._mu.clamp(-1, 1)

    def grid(self, batch: int, sample: bool) -> Tensor:
        """(B, N, 1, 2) read-out positions."""
        mu = self.mu.expand(batch, -1, -1, -1)
        if not sample:
            return mu
        return (mu + self.sigma * torch.randn_like(mu)).clamp(-1, 1)

    def forward(self, x: Tensor, sample: bool | None = None) -> Tensor:
        """(B, C, H, W) core features -> (B, N) linear read-outs."""
        sample = self.training if sample is None else sample
        values = F.grid_sample(x, self.grid(x.shape[0], sample), mode="bilinear",
                               align_corners=True)  # (B, C, N, 1)
        y = (values.squeeze(-1) * self.features.squeeze(2)).sum(1)
        return y if self.bias is None else y + self.bias


def resnet50_core(final_batchnorm: bool = True, final_nonlinearity: bool = True) -> nn.Sequential:
    """ResNet50 cut after ``layer3.0`` (1024 channels) + BatchNorm + ReLU, torchvision layout.

    A 100 × 100 input gives (B, 1024, 7, 7).
    """
    import torchvision

    net = torchvision.models.resnet50(weights=None)
    modules = [("conv1", net.conv1), ("bn1", net.bn1), ("relu", net.relu),
               ("maxpool", net.maxpool), ("layer1", net.layer1), ("layer2", net.layer2),
               ("layer3", nn.Sequential(net.layer3[0]))]
    core = nn.Sequential()
    for name, module in modules:
        core.add_module(name, module)
    if final_batchnorm:
        core.add_module("out_bn", nn.BatchNorm2d(1024))
    if final_nonlinearity:
        core.add_module("out_relu", nn.ReLU())
    return core


def _robust_core_remap(state: dict[str, Tensor], core: nn.Module) -> dict[str, Tensor]:
    """A torchvision/robustness-library ResNet50 checkpoint -> this core's keys: strips
    ``model.``, drops the attacker copy, the normalizer and every layer after ``layer3.0``;
    the final BatchNorm keeps its current values."""
    out = {k: v for k, v in core.state_dict().items() if k.startswith("out_bn")}
    for key, value in state.items():
        if key.startswith(("attacker.", "normalizer.", "normalize.")):
            continue
        key = key.removeprefix("model.")
        if key.startswith("layer3.") and not key.startswith("layer3.0."):
            continue
        if key.startswith(("layer4.", "fc.")):
            continue
        out[key] = value
    return out


class V4EncodingModel(ResponseModel):
    """Macaque-V4 encoding model: ``images (B, 3, H, W) -> responses (B, len(neurons))``.

    Args:
        num_neurons: neurons of the readout (1244 published).
        neurons: indices of the units to report (``[521, ...]``); ``None`` reports all.
        weights: path or URL of a full state dict of this model (core + readout), or ``None``
            for random initialization (tests, or training a new readout).
        sha256: checksum of ``weights``.
        core_weights: path or URL of an ImageNet ResNet50 checkpoint (torchvision or the
            robustness library's layout, e.g. the L2 ε=0.1 robust ResNet50) to initialize the
            core alone; ignored when ``weights`` is given.
        input_size: the model's input side, pixels (100 published).
        mean, std: the input statistics in [0, 255] units (124.54, 70.28 published).
        norm: L2 norm of the standardized input (25, as for the published MEIs); ``None`` off.
        input_space: ``"srgb"`` takes the image values as display intensities (how 3D-MEI feeds
            renders), ``"linear"`` sRGB-encodes them first.
    """

    def __init__(self, num_neurons: int = 1244, neurons: Sequence[int] | None = None,
                 weights: str | None = None, sha256: str | None = None,
                 core_weights: str | None = None, input_size: int = 100,
                 mean: float = 124.54, std: float = 70.28, norm: float | None = 25.0,
                 input_space: str = "srgb", init_mu_range: float = 0.4, init_sigma: float = 0.6):
        super().__init__()
        from lit3d._compat import nullable

        weights, sha256, core_weights = nullable(weights), nullable(sha256), nullable(core_weights)
        if input_size <= 0:
            raise ValueError(f"input_size must be > 0, got {input_size}")
        if input_space not in ("srgb", "linear"):
            raise ValueError(f"input_space must be 'srgb' or 'linear', got {input_space!r}")
        selected = list(range(num_neurons)) if neurons is None else [int(n) for n in neurons]
        bad = [n for n in selected if not 0 <= n < num_neurons]
        if bad or not selected:
            raise ValueError(f"neurons {bad or selected} out of range for {num_neurons} neurons")
        self.input_size, self.input_space = input_size, input_space
        self.register_buffer("neurons", torch.tensor(selected), persistent=False)
        self.num_outputs = len(selected)
        self.normalizer = ImageNormalizer(mean=mean, std=std, norm=norm)
        self.core = resnet50_core()
        self.readout = GaussianReadout(1024, num_neurons, init_mu_range, init_sigma)
        if weights is not None:
            load_weights(self, weights, sha256, remap=self._check_full_state)
        elif core_weights is not None:
            load_weights(self.core, core_weights, remap=_robust_core_remap)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _check_full_state(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
        expected = model.state_dict()
        mu = state.get("readout._mu")
        if mu is not None and mu.shape != expected["readout._mu"].shape:
            raise WeightsError(f"the checkpoint has {mu.shape[1]} neurons, the model "
                               f"{expected['readout._mu'].shape[1]}: set num_neurons to match")
        return state

    def preprocess(self, images: Tensor) -> Tensor:
        """(B, 3 or 1, H, W) in [0, 1] -> (B, 1, S, S) standardized (and norm-scaled) input."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images (B, 3, H, W) or (B, 1, H, W), got "
                             f"{tuple(images.shape)}")
        if self.input_space == "linear":
            from lit3d.render.tonemap import srgb_encode

            images = srgb_encode(images)
        gray = resize(to_grayscale(images), self.input_size) * 255.0
        return self.normalizer(gray)

    def respond(self, inputs: Tensor) -> Tensor:
        """(B, 1, S, S) -> (B, len(neurons)) firing rates, ``ELU(readout − 1) + 1 > 0``."""
        features = self.core(inputs.repeat(1, 3, 1, 1))
        rates = F.elu(self.readout(features) - 1.0) + 1.0
        return rates[:, self.neurons]


__all__ = ["GaussianReadout", "V4EncodingModel", "resnet50_core"]
