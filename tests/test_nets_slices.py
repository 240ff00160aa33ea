"""The slice-wise networks of paper 003 (strokemodels.zoo.nets_slices): shapes, sizes, keys, training."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from strokemodels.zoo.nets_slices import CNN4, MODELS, EfficientFormerV2, MobileNetV2, load_initial_weights
from tests.steps import adam_losses

SMALL: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "cnn4": (CNN4, 128),
    "mobilenetv2": (MobileNetV2, 64),
    "efficientformerv2": (lambda: EfficientFormerV2(input_size=64), 64),
}
PAPER: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "cnn4-128": (CNN4, 128),
    "cnn4-256": (lambda: CNN4(input_size=256), 256),
    "mobilenetv2": (MobileNetV2, 224),
    "efficientformerv2": (EfficientFormerV2, 224),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def _seeded(make: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return make()


def test_the_zoo_names_the_three_networks() -> None:
    expected = {"cnn4": CNN4, "mobilenetv2": MobileNetV2, "efficientformerv2": EfficientFormerV2}
    assert expected == MODELS


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_small_batch_gives_one_logit_per_region(name: str) -> None:
    make, size = SMALL[name]
    model = _seeded(make).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 15)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(PAPER))
def test_the_papers_sizes_run_on_the_meta_device(name: str) -> None:
    make, size = PAPER[name]
    model = make().to("meta")
    for mode in (True, False):
        out = model.train(mode)(torch.empty(2, 3, size, size, device="meta"))
        assert out.shape == (2, 15)
        assert out.device.type == "meta"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cnn4-128", 1_610_159),
        ("cnn4-256", 4_755_887),
        ("mobilenetv2", 2_243_087),
        ("efficientformerv2", 3_248_911),
    ],
)
def test_parameter_counts(name: str, expected: int) -> None:
    assert _count(PAPER[name][0]()) == expected


def test_mobilenetv2_is_torchvisions_size_less_the_imagenet_head() -> None:
    assert _count(MobileNetV2(num_outputs=1000)) == 3_504_872  # torchvision's mobilenet_v2
    assert _count(MobileNetV2()) == 3_504_872 - 1_281_000 + 1280 * 15 + 15


def test_efficientformerv2_is_timms_s0_size_less_the_imagenet_heads() -> None:
    """timm's efficientformerv2_s0 (3.60 M) has two 1000-class heads, the class head and the distillation
    head; this model has one 15-output head."""
    assert _count(EfficientFormerV2()) - (176 * 15 + 15) + 2 * (176 * 1000 + 1000) == 3_600_256


def test_mobilenetv2_state_dict_keys_are_torchvisions() -> None:
    state = MobileNetV2().state_dict()
    expected_shapes = {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.0.1.running_mean": (32,),
        "features.0.1.num_batches_tracked": (),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),
        "features.1.conv.0.1.weight": (32,),
        "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.1.conv.2.bias": (16,),
        "features.2.conv.0.0.weight": (96, 16, 1, 1),
        "features.2.conv.1.0.weight": (96, 1, 3, 3),
        "features.2.conv.2.weight": (24, 96, 1, 1),
        "features.2.conv.3.running_var": (24,),
        "features.17.conv.2.weight": (320, 960, 1, 1),
        "features.18.0.weight": (1280, 320, 1, 1),
        "features.18.1.bias": (1280,),
        "classifier.1.weight": (15, 1280),
        "classifier.1.bias": (15,),
    }
    assert {key: tuple(state[key].shape) for key in expected_shapes} == expected_shapes
    assert len(state) == 314  # 52 convolutions, 52 batch norms of 5 entries, the head's 2
    assert list(state)[:1] + list(state)[-2:] == [
        "features.0.0.weight",
        "classifier.1.weight",
        "classifier.1.bias",
    ]


def test_efficientformerv2_state_dict_keys_are_timms() -> None:
    state = EfficientFormerV2().state_dict()
    for key in (
        "stem.conv1.conv.weight",
        "stem.conv2.bn.running_var",
        "stages.0.blocks.0.mlp.fc1.conv.weight",
        "stages.0.blocks.0.mlp.mid.conv.weight",
        "stages.0.blocks.0.ls2.gamma",
        "stages.1.downsample.conv.conv.weight",
        "stages.2.blocks.4.token_mixer.stride_conv.conv.weight",
        "stages.2.blocks.5.token_mixer.talking_head1.weight",
        "stages.2.blocks.5.ls1.gamma",
        "stages.3.downsample.attn.q.local.weight",
        "stages.3.downsample.attn.q.proj.conv.weight",
        "stages.3.blocks.3.token_mixer.attention_biases",
        "norm.weight",
        "head.weight",
    ):
        assert key in state, key
    assert "stages.2.blocks.3.token_mixer.q.conv.weight" not in state  # attention in the last two only
    assert not any("attention_bias_idxs" in key for key in state)  # not persistent, as in timm
    assert state["stages.2.blocks.4.token_mixer.attention_biases"].shape == (8, 49)  # 7 x 7 at 224
    assert state["stages.3.downsample.attn.attention_biases"].shape == (8, 196)  # 14 x 14 at 224


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_few_adam_steps_lower_the_loss(name: str) -> None:
    make, size = SMALL[name]
    model = _seeded(make).train()
    inputs = torch.randn(4, 3, size, size)
    targets = (torch.rand(4, 15) < 0.2).float()
    losses = adam_losses(model, inputs, targets, nn.functional.binary_cross_entropy_with_logits, steps=6)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_same_seed_gives_the_same_model_and_outputs(name: str) -> None:
    make, size = SMALL[name]
    first, second, other = _seeded(make).eval(), _seeded(make).eval(), _seeded(make, seed=1).eval()
    inputs = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(first(inputs), second(inputs))
        assert torch.equal(first(inputs), first(inputs))
        assert not torch.equal(first(inputs), other(inputs))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradients_reach_every_parameter(name: str) -> None:
    make, size = SMALL[name]
    model = _seeded(make).train()
    targets = (torch.rand(2, 15) < 0.2).float()
    nn.functional.binary_cross_entropy_with_logits(model(torch.randn(2, 3, size, size)), targets).backward()  # type: ignore[no-untyped-call]
    dead = [key for key, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_cnn4_follows_the_papers_best_setting() -> None:
    model = CNN4()
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convolutions] == [(32, (5, 5))] * 2
    assert [m.kernel_size for m in model.modules() if isinstance(m, nn.MaxPool2d)] == [4, 4]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.27] * 3
    assert all(not isinstance(m, nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 5
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 512), *[(512, 512)] * 2, (512, 15)]
    assert CNN4(features=1024, extra_layers=0).head.in_features == 1024
    assert CNN4(padding="valid").classifier[1].in_features == 32 * 6 * 6


def test_models_refuse_another_input_size() -> None:
    with pytest.raises(ValueError, match="expects"):
        CNN4()(torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match="expects"):
        EfficientFormerV2(input_size=64)(torch.zeros(1, 3, 96, 96))
    with pytest.raises(ValueError, match="multiple of 32"):
        EfficientFormerV2(input_size=100)
    with pytest.raises(ValueError, match="activation"):
        CNN4(activation="gelu")  # type: ignore[arg-type]


def test_in_channels_changes_only_the_first_layer() -> None:
    for make in (CNN4, MobileNetV2, lambda in_channels: EfficientFormerV2(in_channels, input_size=64)):
        three, one = make(3).state_dict(), make(1).state_dict()
        changed = [key for key in three if three[key].shape != one[key].shape]
        assert len(changed) == 1 and changed[0].endswith("weight"), changed


def test_load_initial_weights_copies_all_but_the_head() -> None:
    imagenet = _seeded(lambda: MobileNetV2(num_outputs=1000), seed=1).state_dict()
    model = _seeded(MobileNetV2)
    assert load_initial_weights(model, imagenet) == ["classifier.1.bias", "classifier.1.weight"]
    state = model.state_dict()
    assert all(torch.equal(state[key], imagenet[key]) for key in state if not key.startswith("classifier."))
    assert not torch.equal(state["classifier.1.weight"][:15], imagenet["classifier.1.weight"][:15])


def test_load_initial_weights_reports_what_it_skipped_or_lacked() -> None:
    source = MobileNetV2(in_channels=3, num_outputs=15).state_dict()
    del source["features.18.1.bias"]
    source["extra.weight"] = torch.zeros(3)
    model = MobileNetV2(in_channels=1)
    skipped = load_initial_weights(model, source, skip=())
    assert skipped == ["extra.weight", "features.0.0.weight", "features.18.1.bias"]
    assert torch.equal(model.state_dict()["classifier.1.weight"], source["classifier.1.weight"])


def test_load_initial_weights_takes_a_timm_style_state_dict() -> None:
    timm_like = dict(_seeded(EfficientFormerV2, seed=1).state_dict())
    timm_like["head_dist.weight"], timm_like["head_dist.bias"] = torch.zeros(1000, 176), torch.zeros(1000)
    timm_like["head.weight"], timm_like["head.bias"] = torch.zeros(1000, 176), torch.zeros(1000)
    model = _seeded(EfficientFormerV2)
    skipped = load_initial_weights(model, timm_like)
    assert skipped == ["head.bias", "head.weight", "head_dist.bias", "head_dist.weight"]
    assert torch.equal(model.state_dict()["stem.conv1.conv.weight"], timm_like["stem.conv1.conv.weight"])
