"""The occlusion task's networks in plain torch (Papakyriakou et al. 2025): a 3D CNN with CBAM and
self-attention, and the 3D ResNet-18 + CBAM baseline it is compared with (Tahyudin et al. 2024, in 3D).

CBAM (Woo et al. 2018): channel attention from average- and max-pooled descriptors through one shared
MLP (reduction ratio 16), then spatial attention from a 7-wide convolution over the channel-pooled maps.
The self-attention block is the non-local / SAGAN form (Wang et al. 2018; Zhang et al. 2019): query, key
and value 1x1x1 projections, attention over every position, added to the input through a learned gain
that starts at 0. Imported only when a model is built: listing the zoo never imports torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelAttention3d(nn.Module):
    """Re-weigh channels from their average- and max-pooled descriptors through one shared MLP."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv3d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv3d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` scaled per channel by sigmoid(MLP(avg) + MLP(max))."""
        weights = self.mlp(F.adaptive_avg_pool3d(x, 1)) + self.mlp(F.adaptive_max_pool3d(x, 1))
        return x * torch.sigmoid(weights)


class SpatialAttention3d(nn.Module):
    """Re-weigh positions from the channel-wise mean and maximum through a 7x7x7 convolution."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` scaled per position by sigmoid(conv([mean_c, max_c]))."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM3d(nn.Module):
    """Convolutional block attention module: channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention3d(channels, reduction)
        self.spatial = SpatialAttention3d(kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` after channel and spatial attention."""
        return self.spatial(self.channel(x))


class SelfAttention3d(nn.Module):
    """Self-attention over every position of a 3D feature map, added back through a gain that starts at 0."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv3d(channels, inner, 1)
        self.key = nn.Conv3d(channels, inner, 1)
        self.value = nn.Conv3d(channels, channels, 1)
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x + gain * attention(x), the attention a softmax over positions of query . key."""
        batch, channels = x.shape[:2]
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, N, inner)
        key = self.key(x).flatten(2)  # (B, inner, N)
        attention = torch.softmax(query @ key / key.shape[1] ** 0.5, dim=-1)  # (B, N, N)
        value = self.value(x).flatten(2)  # (B, C, N)
        out = (value @ attention.transpose(1, 2)).reshape(batch, channels, *x.shape[2:])
        return x + self.gain * out


def _conv_block(inputs: int, outputs: int) -> nn.Sequential:
    """Return two 3x3x3 convolutions, each with instance normalisation and ReLU (as nnU-Net: batches of
    a few 3D volumes make batch statistics noisy, and the network behaves the same in training and use)."""
    return nn.Sequential(
        nn.Conv3d(inputs, outputs, 3, padding=1, bias=False),
        nn.InstanceNorm3d(outputs, affine=True),
        nn.ReLU(inplace=True),
        nn.Conv3d(outputs, outputs, 3, padding=1, bias=False),
        nn.InstanceNorm3d(outputs, affine=True),
        nn.ReLU(inplace=True),
    )


class CBAM3dCNN(nn.Module):
    """Papakyriakou et al.'s classifier as chosen here: four stages of two convolutions (instance norm,
    ReLU), CBAM and max pooling (16, 32, 64, 128 channels), self-attention on the last feature map, global
    average pooling, dropout and a linear layer to the classes."""

    def __init__(
        self, in_channels: int = 3, classes: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128)
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            stages += [_conv_block(previous, width), CBAM3d(width), nn.MaxPool3d(2, ceil_mode=True)]
            previous = width
        self.features = nn.Sequential(*stages)
        self.attention = SelfAttention3d(previous)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(previous, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits (B, classes) of a batch (B, C, X, Y, Z)."""
        features = self.attention(self.features(x))
        return self.head(F.adaptive_avg_pool3d(features, 1))


class BasicBlock3d(nn.Module):
    """ResNet's basic block in 3D: two 3x3x3 convolutions and an identity (or projected) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(outputs)
        self.conv2 = nn.Conv3d(outputs, outputs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(outputs)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv3d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm3d(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


class ResNet18CBAM3d(nn.Module):
    """Tahyudin et al.'s ResNet-18 + CBAM, in 3D: a 3D ResNet-18 (7x7x7 stem with stride 2, max pooling,
    four stages of two basic blocks with 64, 128, 256, 512 channels), CBAM on its last feature map, global
    average pooling and a fully connected head (512 -> 256 -> classes)."""

    def __init__(self, in_channels: int = 3, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, stride=2, padding=1),
        )
        layers: list[nn.Module] = []
        previous = 64
        for index, width in enumerate((64, 128, 256, 512)):
            stride = 1 if index == 0 else 2
            layers += [BasicBlock3d(previous, width, stride), BasicBlock3d(width, width, 1)]
            previous = width
        self.layers = nn.Sequential(*layers)
        self.cbam = CBAM3d(previous)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(previous, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(256, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits (B, classes) of a batch (B, C, X, Y, Z)."""
        features = self.cbam(self.layers(self.stem(x)))
        return self.head(F.adaptive_avg_pool3d(features, 1))
