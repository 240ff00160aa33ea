"""The slice-wise networks of the AMI-Net report (paper 003) in plain torch: each classifies which of the 15
atlas regions hold clot in one axial CTA slice (multi-label), from the slice's three multiphase CTA phases
as channels, and returns one logit per region (a sigmoid per region, trained with BCE-with-logits).

- ``cnn4`` (:class:`CNN4`): the report's simple CNN (after Carvalho et al. 2020), two 5x5 convolutions
  and a fully connected head, at its best tuned setting, trained from scratch.
- ``mobilenetv2`` (:class:`MobileNetV2`): Sandler et al. 2018, torchvision's mobilenet_v2 with a 15-way
  head and torchvision's state-dict keys, for fine-tuning from ImageNet weights stored locally.
- ``efficientformerv2`` (:class:`EfficientFormerV2`, in nets_efficientformer): EfficientFormerV2-S0 with
  timm's state-dict keys.

:func:`load_initial_weights` copies a pretrained state dict into one of them by key, skipping the head.
Nothing here downloads weights. Imported only when a model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from strokemodels.zoo.nets_efficientformer import EfficientFormerV2

__all__ = ["CNN4", "MODELS", "EfficientFormerV2", "MobileNetV2", "load_initial_weights"]

Activation = Literal["tanh", "relu", "sigmoid"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class CNN4(nn.Module):
    """The report's simple CNN at its best setting on raw CTA (Table 3 / A2c, validation F1 0.67): two 5x5
    convolutions of 32 kernels, each followed by the activation and 4x4 max pooling, a fully connected layer
    of 512 features, two extra fully connected layers, dropout 0.27, tanh, 128 x 128 input. Forward returns
    (B, num_outputs) logits, one per atlas region, for slices (B, in_channels, input_size, input_size).

    Choices where paper 003 is silent:
    - "same" padding (2) for the 5x5 convolutions, so a 128 slice gives 32 x 8 x 8 features ("valid" optional)
    - the activation follows each convolution and each hidden fully connected layer, before pooling/dropout
    - an "extra layer" is one more fully connected layer of ``features`` units with activation and dropout
    - dropout follows every hidden fully connected layer, none after the convolutions
    - the output layer is linear (logits): the figure's softmax is replaced by a sigmoid per region
    - pooling is max pooling with stride equal to its size (floor on odd sizes)
    - initialisation: torch's defaults (Kaiming-uniform); convolutions and linear layers have biases
    - the input has ``in_channels`` channels (the three CTA phases), not the figure's single channel
    """

    head_prefixes = ("head.",)

    def __init__(
        self,
        in_channels: int = 3,
        num_outputs: int = 15,
        input_size: int = 128,
        kernels: int = 32,
        kernel_size: int = 5,
        pool: int = 4,
        features: int = 512,
        extra_layers: int = 2,
        dropout: float = 0.27,
        activation: Activation = "tanh",
        padding: Literal["same", "valid"] = "same",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, not {activation!r}")
        pad = kernel_size // 2 if padding == "same" else 0
        size = input_size
        for _ in range(2):
            size = (size + 2 * pad - kernel_size + 1) // pool
        if size < 1:
            raise ValueError(
                f"CNN4 with {padding} padding and {pool}x{pool} pooling needs slices larger than {input_size}"
            )
        self.in_channels, self.input_size = in_channels, input_size
        act = _ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, kernels, kernel_size, padding=pad),
            act(),
            nn.MaxPool2d(pool),
            nn.Conv2d(kernels, kernels, kernel_size, padding=pad),
            act(),
            nn.MaxPool2d(pool),
        )
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(kernels * size * size, features), act()]
        layers.append(nn.Dropout(dropout))
        for _ in range(extra_layers):
            layers += [nn.Linear(features, features), act(), nn.Dropout(dropout)]
        self.classifier = nn.Sequential(*layers)
        self.head = nn.Linear(features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return region logits (B, num_outputs) for slices (B, in_channels, input_size, input_size)."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"CNN4 expects (B, {', '.join(map(str, expected))}), not {tuple(x.shape)}")
        logits: torch.Tensor = self.head(self.classifier(self.features(x)))
        return logits


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, by no more than 10% down (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU6(nn.Sequential):
    """Convolution without bias, batch norm, ReLU6 (torchvision's Conv2dNormActivation: keys .0, .1)."""

    def __init__(self, inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(inputs, outputs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (unless t = 1), depth-wise 3x3, linear 1x1 projection; a residual
    connection when the stride is 1 and the width is kept."""

    def __init__(self, inputs: int, outputs: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(inputs * expand_ratio)
        self.stride, self.out_channels = stride, outputs
        self.use_res_connect = stride == 1 and inputs == outputs
        layers: list[nn.Module] = [ConvBNReLU6(inputs, hidden, kernel=1)] if expand_ratio != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, outputs, 1, 1, 0, bias=False),
            nn.BatchNorm2d(outputs),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x + conv(x) with the residual connection, conv(x) without."""
        out: torch.Tensor = self.conv(x)
        return x + out if self.use_res_connect else out


MOBILENET_V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""Inverted residual stages: expansion t, channels c, repeats n, first stride s (Sandler et al. Table 2)."""


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) exactly as torchvision's mobilenet_v2, same module names and
    state-dict keys (features.0.0.weight ... classifier.1.weight), with a ``num_outputs``-way head. Forward
    returns (B, num_outputs) logits, one per atlas region, for slices (B, in_channels, H, W) (224 in 003).

    Choices where paper 003 is silent:
    - torchvision's variant: width 1.0, channels rounded to multiples of 8, last conv 1280, dropout 0.2
    - the head is one Linear(1280, num_outputs) replacing the 1000-class one; nothing else is changed
    - ``in_channels`` != 3 changes only the first convolution (which then cannot take ImageNet weights)
    - initialisation as torchvision (Kaiming-normal fan-out convolutions, head normal std 0.01); 003
      fine-tunes from ImageNet weights, which :func:`load_initial_weights` copies in when given
    """

    head_prefixes = ("classifier.",)

    def __init__(
        self, in_channels: int = 3, num_outputs: int = 15, width_mult: float = 1.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        channels = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(in_channels, channels, stride=2)]
        for expand, width, repeats, stride in MOBILENET_V2_SETTING:
            outputs = _make_divisible(width * width_mult)
            for index in range(repeats):
                features.append(InvertedResidual(channels, outputs, stride if index == 0 else 1, expand))
                channels = outputs
        features.append(ConvBNReLU6(channels, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_outputs))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return region logits (B, num_outputs) for slices (B, in_channels, H, W)."""
        features = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        logits: torch.Tensor = self.classifier(torch.flatten(features, 1))
        return logits


MODELS: dict[str, type[nn.Module]] = {
    "cnn4": CNN4,
    "mobilenetv2": MobileNetV2,
    "efficientformerv2": EfficientFormerV2,
}
"""The zoo names of the slice-wise networks."""


def load_initial_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], skip: tuple[str, ...] | None = None
) -> list[str]:
    """Copy into ``model`` every tensor of ``state_dict`` whose key and shape match the model's, except the
    head (keys starting with ``skip``; by default the model's ``head_prefixes``), and return the sorted keys
    that were not copied: the head's, mismatched shapes, keys the model lacks and keys the state dict lacks.
    """
    prefixes = skip if skip is not None else tuple(getattr(model, "head_prefixes", ()))
    own = model.state_dict()
    loaded: set[str] = set()
    with torch.no_grad():
        for key, tensor in state_dict.items():
            target = own.get(key)
            if key.startswith(prefixes) or target is None or target.shape != tensor.shape:
                continue
            target.copy_(tensor)
            loaded.add(key)
    return sorted((set(own) | set(state_dict)) - loaded)
