"""The vision-network zoo: latent shapes, preprocessing constants, channel order, weights."""

import lit3d  # noqa: F401, I001  (first: repairs torchvision on CPU-only torch)

import numpy as np
import pytest
import torch

from lit3d.models.preprocessing import resize
from lit3d.models.zoo import (CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ZOO, VisionModel,
                              _lpips_vgg_remap, to_channels_first)
from lit3d.models.weights import WeightsError

#: (name, documented latent size at the default layer and input size).
DOCUMENTED = {"resnet50": 2048, "resnet50_sin": 2048, "vgg16": 4096, "vgg19": 4096,
              "lpips_vgg": 6_121_472, "dinov2_vits14": 384, "dinov2_vitb14": 768,
              "clip_vit_b32": 512, "clip_vit_l14": 768, "efficientnet_lite0": 1280,
              "mobilenet_v2": 1280}


def test_every_zoo_network_is_documented():
    assert set(DOCUMENTED) == set(ZOO)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_random_init_network_returns_the_documented_latent(name):
    torch.manual_seed(0)
    model = VisionModel(name, weights=None)
    images = torch.rand(2, 3, 72, 96)  # any size: the model resizes to its input
    with torch.no_grad():
        latents = model(images)
    assert latents.shape == (2, DOCUMENTED[name]) and model.num_outputs == DOCUMENTED[name]
    assert torch.isfinite(latents).all()
    # The latent depends on the image (relative: random-init activations can be tiny). Not for
    # random DINOv2: its LayerScale starts at 1e-5, so the CLS token barely sees the patches.
    if not name.startswith("dinov2"):
        assert (latents[0] - latents[1]).abs().max() > 1e-3 * latents.abs().max()


@pytest.mark.parametrize("name, mean, std", [
    ("resnet50", IMAGENET_MEAN, IMAGENET_STD),
    ("dinov2_vits14", IMAGENET_MEAN, IMAGENET_STD),  # not CLIP's (an MRD reference-code bug)
    ("clip_vit_b32", CLIP_MEAN, CLIP_STD),
    ("lpips_vgg", IMAGENET_MEAN, IMAGENET_STD),
])
def test_preprocessing_applies_each_channels_own_constants(name, mean, std):
    model = VisionModel(name, weights=None)
    colour = (0.2, 0.5, 0.8)
    image = torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, 40, 40)
    x = model.preprocess(image)
    assert x.shape == (1, 3, model.input_size, model.input_size)
    for c in range(3):
        assert torch.allclose(x[0, c], torch.tensor((colour[c] - mean[c]) / std[c]), atol=1e-5)


def test_lpips_constants_are_imagenet_statistics():
    import lpips

    layer = lpips.lpips.ScalingLayer()
    x = torch.rand(1, 3, 8, 8)
    ours = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1)
    assert torch.allclose(layer(2 * x - 1), ours, atol=2e-3)  # lpips rounds to 3 decimals


def test_channels_last_images_are_permuted_never_reinterpreted():
    h, w = 5, 7
    hwc = torch.stack([torch.full((h, w), 0.1), torch.linspace(0, 1, h * w).view(h, w),
                       torch.full((h, w), 0.9)], dim=-1)  # (H, W, 3)
    chw = to_channels_first(hwc)
    for c in range(3):
        assert torch.equal(chw[c], hwc[..., c])
    assert not torch.equal(chw, hwc.reshape(3, h, w))  # what `.view` would have produced
    batch = to_channels_first(hwc[None])
    assert torch.equal(batch[0], chw)
    model = VisionModel("mobilenet_v2", weights=None)
    with pytest.raises(ValueError, match="permute"):
        model(hwc[None])


def test_layers_logits_and_unknown_names():
    model = VisionModel("resnet50", weights=None, layer="layer3")
    assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1024 * 14 * 14)
    assert model.num_outputs == 1024 * 14 * 14
    assert VisionModel("mobilenet_v2", weights=None, layer="logits").num_outputs == 1000
    with pytest.raises(ValueError, match="no layer 'layer9'"):
        VisionModel("resnet50", weights=None, layer="layer9")
    with pytest.raises(ValueError, match="unknown model 'resnet51'"):
        VisionModel("resnet51")
    with pytest.raises(ValueError, match="no classification output"):
        VisionModel("clip_vit_b32", weights=None, layer="logits")


def test_networks_stay_frozen_in_eval_mode_but_pass_gradients_to_the_image():
    model = VisionModel("mobilenet_v2", weights=None)
    model.train()
    assert not model.training and not model.net.training
    assert not any(p.requires_grad for p in model.parameters())
    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    model(image).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_lpips_latent_distance_is_the_lpips_distance():
    torch.manual_seed(0)
    model = VisionModel("lpips_vgg", weights=None, input_size=64)
    for lin in model.net.lins:  # positive channel weights, as trained LPIPS has
        lin.model[-1].weight.data.uniform_(0, 1)
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours = model.distance(model(a), model(b))
        reference = model.net(a, b, normalize=True).flatten()
    assert torch.allclose(ours, reference, rtol=1e-4)


def test_lpips_backbone_loads_torchvision_vgg16_keys():
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    model = VisionModel("lpips_vgg", weights=None)
    state = _lpips_vgg_remap(vgg.state_dict(), model.net)
    model.net.load_state_dict(state)
    assert torch.equal(model.net.net.slice3.state_dict()["10.weight"], vgg.features[10].weight)
    assert torch.equal(model.net.net.slice5.state_dict()["28.bias"], vgg.features[28].bias)


def test_resnet50_weights_from_a_local_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None).eval()
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    model = VisionModel("resnet50", weights=str(path), layer="logits")
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        expected = reference((x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
                             / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        assert torch.allclose(model(x), expected, atol=1e-4)
    with pytest.raises(WeightsError, match="checksum"):
        VisionModel("resnet50", weights=str(path), sha256="00000000")


def test_dinov2_loads_an_original_format_checkpoint(tmp_path):
    """DINOv2's published files: 518-px position embeddings and a mask token (timm converts)."""
    import timm

    original = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    state = dict(original.state_dict(), mask_token=torch.zeros(1, 384))
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    model = VisionModel("dinov2_vits14", weights=str(path))
    assert torch.equal(model.net.blocks[3].attn.qkv.weight, original.blocks[3].attn.qkv.weight)
    assert model.net.pos_embed.shape == (1, 1 + 16 * 16, 384)


def test_missing_offline_weights_name_the_remedy(monkeypatch, tmp_path):
    monkeypatch.setenv("LIT3D_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match="weights:"):
        VisionModel("resnet50_sin", weights="http://127.0.0.1:9/resnet50_sin.pth.tar")


def crop_square(image: np.ndarray) -> torch.Tensor:
    x = to_channels_first(torch.from_numpy(image).float() / 255)[None]
    h, w = x.shape[-2:]
    s = min(h, w)
    return x[..., (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2"])
def test_offline_pretrained_network_classifies_natural_images(name):
    data = pytest.importorskip("skimage.data")
    model = VisionModel(name, layer="logits")  # default = the offline ImageNet weights
    images = torch.cat([resize(crop_square(data.chelsea()), 224),
                        resize(crop_square(data.coffee()), 224)])
    with torch.no_grad():
        top = model(images).argmax(1).tolist()
    assert 281 <= top[0] <= 285, top  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert top[1] in (967, 968), top  # espresso / cup


def test_linear_input_is_srgb_encoded_before_normalization():
    from lit3d.render.tonemap import srgb_encode

    linear = torch.rand(1, 3, 32, 32)
    as_linear = VisionModel("mobilenet_v2", weights=None, input_space="linear")
    as_srgb = VisionModel("mobilenet_v2", weights=None)
    assert torch.allclose(as_linear.preprocess(linear), as_srgb.preprocess(srgb_encode(linear)))
    with pytest.raises(ValueError, match="input_space"):
        VisionModel("mobilenet_v2", weights=None, input_space="log")


@pytest.mark.parametrize("name,patches,width,cls_dim", [("dinov2_vits14", 256, 384, 384),
                                                        ("clip_vit_b32", 49, 768, 512)])
def test_vision_transformer_latents_from_the_class_token_or_the_patch_tokens(
        name, patches, width, cls_dim):
    """``token``: the class token (default, as the network outputs it), every patch token
    after the final norm concatenated, or their mean; the same preprocessing for all three."""
    base = VisionModel(name, weights=None)
    models = {"cls": base}
    for token in ("patch", "mean_patch"):
        models[token] = VisionModel(name, weights=None, token=token)
        models[token].load_state_dict(base.state_dict())
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        latents = {token: model(images) for token, model in models.items()}
        inputs = base.preprocess(images)
        for model in models.values():
            assert torch.equal(model.preprocess(images), inputs)
        if name.startswith("dinov2"):  # timm's token pooling is the CLS token after the norm
            tokens = base.net.forward_features(inputs)
            assert torch.allclose(latents["cls"], tokens[:, 0], atol=1e-5)
            assert torch.allclose(latents["patch"], tokens[:, 1:].flatten(1), atol=1e-5)
    assert latents["cls"].shape == (2, cls_dim)
    assert latents["patch"].shape == (2, patches * width)
    assert latents["mean_patch"].shape == (2, width)
    assert [models[t].num_outputs for t in ("cls", "patch", "mean_patch")] == [
        cls_dim, patches * width, width]
    assert torch.allclose(latents["patch"].view(2, patches, width).mean(1),
                          latents["mean_patch"], atol=1e-5)
    assert not torch.allclose(latents["patch"][0], latents["patch"][1])


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="resnet50", token="patch"), "needs a vision transformer"),
    (dict(name="dinov2_vits14", token="mean_patch", layer="blocks.3"), "layer=None"),
    (dict(name="dinov2_vits14", token="tokens"), "token must be"),
])
def test_patch_tokens_only_for_vision_transformers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VisionModel(weights=None, **kwargs)
