"""EfficientFormerV2-S0 (Li et al. 2023, "Rethinking Vision Transformers for MobileNet Size and Speed") in
plain torch, for the slice-wise clot-region classifier of the AMI-Net report (paper 003).

A 4-stage hybrid: a stem of two stride-2 3x3 convolutions (batch norm, GELU), then stages of FFN blocks
(1x1 conv, depth-wise 3x3 conv, 1x1 conv, each with batch norm, under a layer scale); the last blocks of
stages 3 and 4 add multi-head self-attention (Attention4D, with talking heads and a learned bias per
relative position; in stage 3 on a stride-2 copy of the map, upsampled back), and stage 4 is entered
through a local-global attention downsampling (Attention4DDownsample) added to a strided convolution.

Module names and state-dict keys follow timm's ``efficientformerv2_s0`` (stem.conv1.conv.weight,
stages.3.downsample.attn.q.local.weight, ..., norm.weight, head.weight), so that a timm state dict loads
by key; timm's distillation head ``head_dist`` has no counterpart here (one head only), and the official
Snap checkpoints use other names (timm's checkpoint_filter_fn maps them). The attention biases and their
index buffers depend on the input resolution: a model is built for one ``input_size`` and takes only
that size. Imported only when a model is built.
"""

from __future__ import annotations

import torch
from torch import nn

S0_DEPTHS = (2, 2, 6, 4)
S0_WIDTHS = (32, 48, 96, 176)
S0_MLP_RATIOS: tuple[tuple[float, ...], ...] = ((4, 4), (4, 4), (4, 3, 3, 3, 4, 4), (4, 3, 3, 4))


class ConvNorm(nn.Module):
    """A convolution (with bias, padding k // 2) and batch norm, then GELU when ``act`` is set."""

    def __init__(
        self, inputs: int, outputs: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups)
        self.bn = nn.BatchNorm2d(outputs)
        self.act: nn.Module = nn.GELU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return act(bn(conv(x)))."""
        out: torch.Tensor = self.act(self.bn(self.conv(x)))
        return out


class LayerScale2d(nn.Module):
    """Scale each channel by a learned factor (timm's LayerScale2d, parameter ``gamma``)."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x * gamma, gamma broadcast over (B, C, H, W)."""
        return x * self.gamma.view(1, -1, 1, 1)


def _grid(size: int, step: int = 1) -> torch.Tensor:
    """Return the (2, N) row and column indices of a size x size grid, every ``step``-th row and column."""
    axis = torch.arange(0, size, step)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij")).flatten(1)


def _bias_indices(queries: torch.Tensor, keys: torch.Tensor, size: int) -> torch.Tensor:
    """Return the (Nq, Nk) index of each query-key offset |dr| * size + |dc| into the attention biases."""
    offset = (queries[:, :, None] - keys[:, None, :]).abs()
    return offset[0] * size + offset[1]


class Attention4D(nn.Module):
    """Multi-head self-attention on a (B, C, H, W) map with talking heads and relative-position biases; with
    ``stride`` the attention runs on a depth-wise strided copy and is upsampled back (bilinear)."""

    attention_bias_idxs: torch.Tensor

    def __init__(
        self, dim: int, resolution: int, key_dim: int = 32, heads: int = 8, ratio: int = 4, stride: int = 1
    ) -> None:
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim**-0.5
        self.stride_conv: nn.Module | None = None
        self.upsample: nn.Module | None = None
        if stride > 1:
            resolution = -(-resolution // stride)
            self.stride_conv = ConvNorm(dim, dim, 3, stride, groups=dim)
            self.upsample = nn.Upsample(scale_factor=stride, mode="bilinear")
        self.resolution, self.tokens = resolution, resolution * resolution
        self.dh = ratio * key_dim * heads
        self.q = ConvNorm(dim, key_dim * heads)
        self.k = ConvNorm(dim, key_dim * heads)
        self.v = ConvNorm(dim, self.dh)
        self.v_local = ConvNorm(self.dh, self.dh, 3, groups=self.dh)
        self.talking_head1 = nn.Conv2d(heads, heads, 1)
        self.talking_head2 = nn.Conv2d(heads, heads, 1)
        self.act = nn.GELU()
        self.proj = ConvNorm(self.dh, dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, self.tokens))
        grid = _grid(resolution)
        self.register_buffer("attention_bias_idxs", _bias_indices(grid, grid, resolution), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the attention output (B, C, H, W) for x (B, C, H, W), before the block's layer scale."""
        batch, size = x.shape[0], self.resolution
        if self.stride_conv is not None:
            x = self.stride_conv(x)
        q = self.q(x).reshape(batch, self.heads, -1, self.tokens).transpose(2, 3)
        k = self.k(x).reshape(batch, self.heads, -1, self.tokens)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(batch, self.heads, -1, self.tokens).transpose(2, 3)
        biases = self.attention_biases[:, self.attention_bias_idxs]
        attention = self.talking_head2(self.talking_head1((q @ k) * self.scale + biases).softmax(dim=-1))
        out = (attention @ v).transpose(2, 3).reshape(batch, self.dh, size, size) + v_local
        if self.upsample is not None:
            out = self.upsample(out)
        projected: torch.Tensor = self.proj(self.act(out))
        return projected


class LocalGlobalQuery(nn.Module):
    """The downsampling attention's query: a stride-2 depth-wise 3x3 conv plus stride-2 subsampling."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(1, 2, 0)
        self.local = nn.Conv2d(inputs, inputs, 3, 2, 1, groups=inputs)
        self.proj = ConvNorm(inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return proj(local(x) + pool(x)) at half the resolution."""
        out: torch.Tensor = self.proj(self.local(x) + self.pool(x))
        return out


class Attention4DDownsample(nn.Module):
    """Local-global attention that halves the resolution: half-resolution queries attend to every key."""

    attention_bias_idxs: torch.Tensor

    def __init__(
        self, dim: int, out_dim: int, resolution: int, key_dim: int = 16, heads: int = 8, ratio: int = 4
    ) -> None:
        super().__init__()
        self.heads, self.scale = heads, key_dim**-0.5
        self.resolution2 = -(-resolution // 2)
        self.tokens, self.tokens2 = resolution * resolution, self.resolution2 * self.resolution2
        self.dh = ratio * key_dim * heads
        self.q = LocalGlobalQuery(dim, key_dim * heads)
        self.k = ConvNorm(dim, key_dim * heads)
        self.v = ConvNorm(dim, self.dh)
        self.v_local = ConvNorm(self.dh, self.dh, 3, 2, groups=self.dh)
        self.act = nn.GELU()
        self.proj = ConvNorm(self.dh, out_dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, self.tokens))
        indices = _bias_indices(_grid(resolution, 2), _grid(resolution), resolution)
        self.register_buffer("attention_bias_idxs", indices, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, out_dim, H / 2, W / 2) for x (B, dim, H, W)."""
        batch, size = x.shape[0], self.resolution2
        q = self.q(x).reshape(batch, self.heads, -1, self.tokens2).transpose(2, 3)
        k = self.k(x).reshape(batch, self.heads, -1, self.tokens)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(batch, self.heads, -1, self.tokens).transpose(2, 3)
        attention = ((q @ k) * self.scale + self.attention_biases[:, self.attention_bias_idxs]).softmax(-1)
        out = (attention @ v).transpose(2, 3).reshape(batch, self.dh, size, size) + v_local
        projected: torch.Tensor = self.proj(self.act(out))
        return projected


class Downsample(nn.Module):
    """A stride-2 3x3 conv with batch norm, plus (in the last stage) the local-global attention."""

    def __init__(self, inputs: int, outputs: int, resolution: int, attention: bool) -> None:
        super().__init__()
        self.conv = ConvNorm(inputs, outputs, 3, 2)
        self.attn = Attention4DDownsample(inputs, outputs, resolution) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return conv(x) (+ attn(x)) at half the resolution."""
        out: torch.Tensor = self.conv(x)
        return out if self.attn is None else out + self.attn(x)


class ConvMlp(nn.Module):
    """The FFN: 1x1 conv (expansion), depth-wise 3x3 conv, 1x1 conv back, each with batch norm."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = ConvNorm(dim, hidden, act=True)
        self.mid = ConvNorm(hidden, hidden, 3, groups=hidden, act=True)
        self.fc2 = ConvNorm(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return fc2(mid(fc1(x)))."""
        out: torch.Tensor = self.fc2(self.mid(self.fc1(x)))
        return out


class Block(nn.Module):
    """x + ls1 * attention(x) (attention blocks only), then x + ls2 * mlp(x)."""

    def __init__(
        self, dim: int, ratio: float, resolution: int, attention: bool, stride: int, scale: float
    ) -> None:
        super().__init__()
        self.token_mixer = Attention4D(dim, resolution, stride=stride) if attention else None
        self.ls1 = LayerScale2d(dim, scale) if attention else None
        self.mlp = ConvMlp(dim, int(dim * ratio))
        self.ls2 = LayerScale2d(dim, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's output, the shape of x."""
        if self.token_mixer is not None and self.ls1 is not None:
            x = x + self.ls1(self.token_mixer(x))
        out: torch.Tensor = x + self.ls2(self.mlp(x))
        return out


class Stem(nn.Module):
    """Two stride-2 3x3 convolutions with batch norm and GELU: 1/4 of the resolution."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(inputs, outputs // 2, 3, 2, act=True)
        self.conv2 = ConvNorm(outputs // 2, outputs, 3, 2, act=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return conv2(conv1(x))."""
        out: torch.Tensor = self.conv2(self.conv1(x))
        return out


class Stage(nn.Module):
    """An optional downsampling, then the stage's blocks (timm's ``downsample`` and ``blocks``)."""

    def __init__(self, downsample: nn.Module, blocks: list[Block]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return blocks(downsample(x))."""
        out: torch.Tensor = self.blocks(self.downsample(x))
        return out


class EfficientFormerV2(nn.Module):
    """EfficientFormerV2 (S0 by default) with one linear head: forward returns (B, num_outputs) logits,
    one per atlas region (apply a sigmoid per region), for a batch (B, in_channels, input_size, input_size).

    Choices where paper 003 is silent (it fine-tunes an ImageNet-pretrained model at 224 x 224):
    - architecture and names follow timm's efficientformerv2_s0 (num_vit = 2: attention in the last two
      blocks of stages 3 and 4; attention downsampling into stage 4 only; key dim 32, 8 heads, ratio 4)
    - one head on globally averaged, batch-normalised features; no distillation head
    - no dropout before the head and no stochastic depth (timm's S0 defaults: 0.0)
    - layer scale starts at 1e-5; batch norm eps 1e-5; GELU is the exact (erf) form
    - initialisation: torch defaults, the head truncated normal (std 0.02, bias 0), attention biases 0
    - input_size must be a multiple of 32 (the attention biases are built for that one size)
    """

    head_prefixes = ("head.", "head_dist.")

    def __init__(
        self,
        in_channels: int = 3,
        num_outputs: int = 15,
        input_size: int = 224,
        depths: tuple[int, ...] = S0_DEPTHS,
        widths: tuple[int, ...] = S0_WIDTHS,
        mlp_ratios: tuple[tuple[float, ...], ...] = S0_MLP_RATIOS,
        num_vit: int = 2,
        layer_scale_init: float = 1e-5,
    ) -> None:
        super().__init__()
        if input_size <= 0 or input_size % 32:
            raise ValueError(
                f"EfficientFormerV2 needs an input size that is a multiple of 32, not {input_size}"
            )
        if not len(depths) == len(widths) == len(mlp_ratios) == 4:
            raise ValueError("EfficientFormerV2 has four stages: give four depths, widths and ratio tuples")
        if any(len(ratios) != depth for ratios, depth in zip(mlp_ratios, depths, strict=True)):
            raise ValueError(f"mlp_ratios {mlp_ratios} must give one ratio per block of depths {depths}")
        self.in_channels, self.input_size = in_channels, input_size
        self.stem = Stem(in_channels, widths[0])
        resolution, previous = input_size // 4, widths[0]
        stages: list[Stage] = []
        for index, (depth, width, ratios) in enumerate(zip(depths, widths, mlp_ratios, strict=True)):
            downsample: nn.Module = nn.Identity()
            if index > 0:
                downsample = Downsample(previous, width, resolution, attention=index >= 3)
                resolution //= 2
            blocks = [
                Block(
                    width,
                    ratios[block],
                    resolution,
                    attention=index >= 2 and block >= depth - num_vit,
                    stride=2 if index == 2 else 1,
                    scale=layer_scale_init,
                )
                for block in range(depth)
            ]
            stages.append(Stage(downsample, blocks))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(previous)
        self.head = nn.Linear(previous, num_outputs)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return region logits (B, num_outputs) for slices (B, in_channels, input_size, input_size)."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"EfficientFormerV2 expects (B, {', '.join(map(str, expected))}), not {tuple(x.shape)}"
            )
        features = self.norm(self.stages(self.stem(x)))
        logits: torch.Tensor = self.head(features.mean(dim=(2, 3)))
        return logits
