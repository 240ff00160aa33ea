"""The recanalization task's networks in plain torch (Zhang, Polson et al., MIDL 2022): SCANet and the
slice-wise ResNet-34 baseline it is compared with.

Both read a batch (B, C, X, Y, Z) of NCCT and CTA after the recanalization preprocessing (the paper: 26
axial slices of 224 x 224) and treat the axial slices (the last axis) as 2D images, folded into the batch.
Both return (B, 1) logits of favourable recanalization (mTICI >= 2c); a sigmoid gives the probability.

The ResNet-34 trunk (He et al. 2016) keeps torchvision's module and parameter names (``conv1``, ``bn1``,
``layer1`` .. ``layer4``, blocks with ``conv1``/``bn1``/``conv2``/``bn2``/``downsample.0``/``downsample.1``)
so a torchvision state dict loads by key. The transformer modules follow ViT (Dosovitskiy et al. 2021):
pre-norm blocks of multi-head attention and a GELU MLP, each added back to its input. Imported only when a
model is built: listing the zoo never imports torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RESNET34_BLOCKS = (3, 4, 6, 3)
RESNET34_WIDTHS = (64, 128, 256, 512)
FEATURES = RESNET34_WIDTHS[-1]


def fold_slices(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Return the axial slices of a batch (B, C, X, Y, Z) as a batch of 2D images (B * Z, C, X, Y)."""
    if x.dim() != 5 or x.shape[1] != in_channels:
        raise ValueError(f"expected a batch (B, {in_channels}, X, Y, Z), got shape {tuple(x.shape)}")
    batch, channels, width, height, depth = x.shape
    return x.permute(0, 4, 1, 2, 3).reshape(batch * depth, channels, width, height)


class BasicBlock(nn.Module):
    """ResNet's basic block as torchvision writes it: two 3x3 convolutions with batch norm and an identity
    (or 1x1 projected) shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: torch.Tensor = self.relu(out + identity)
        return result


class ResNet34Trunk(nn.Module):
    """torchvision's resnet34 without ``avgpool`` and ``fc``: the stem (7x7 convolution with stride 2,
    batch norm, ReLU, 3x3 max pooling with stride 2) and four stages of 3, 4, 6, 3 basic blocks with 64,
    128, 256, 512 channels. ``forward`` returns the feature map (N, 512, ~X/32, ~Y/32) of images
    (N, C, X, Y). Initialised as torchvision does (Kaiming normal, fan out, for the convolutions)."""

    def __init__(self, in_channels: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, RESNET34_WIDTHS[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(RESNET34_WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages: list[nn.Sequential] = []
        previous = RESNET34_WIDTHS[0]
        for index, (blocks, width) in enumerate(zip(RESNET34_BLOCKS, RESNET34_WIDTHS, strict=True)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(previous, width, stride)] + [
                BasicBlock(width, width) for _ in range(blocks - 1)
            ]
            stages.append(nn.Sequential(*stage))
            previous = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Return the stem's output (N, 64, ~X/4, ~Y/4): SCANet's global 2D convolutional block."""
        out: torch.Tensor = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return out

    def stages(self, x: torch.Tensor) -> torch.Tensor:
        """Return the feature map (N, 512, ~X/32, ~Y/32) of the four stages over a stem output."""
        out: torch.Tensor = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the feature map (N, 512, ~X/32, ~Y/32) of images (N, C, X, Y)."""
        return self.stages(self.stem(x))


class ResNet34Slices(ResNet34Trunk):
    """The paper's ResNet34 baseline: torchvision's resnet34 on every axial slice, global average pooling
    to a 512-d feature per slice, the mean of these over the slices, and ``fc`` to one logit. ``forward``
    returns logits (B, 1) of a batch (B, C, X, Y, Z). The parameter names are torchvision's (``fc`` has one
    output instead of 1000), so a torchvision resnet34 state dict without ``fc`` loads by key.

    Choices where the paper is silent (it names the baseline only):
    - slices combined by the mean of their pooled 512-d features (the same as the mean of per-slice
      logits, as ``fc`` is linear); the slice order is ignored.
    - one logit for the binary task (sigmoid / BCE) instead of a two-class softmax.
    - trained from scratch (no ImageNet weights: nothing is downloaded); torchvision's initialisation.
    - batch norm statistics are taken over the slices of all patients in a batch (slices folded into it).
    """

    def __init__(self, in_channels: int = 2) -> None:
        super().__init__(in_channels)
        self.in_channels = in_channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(FEATURES, 1)

    def slice_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled 512-d feature of every slice (B, Z, 512) of a batch (B, C, X, Y, Z)."""
        pooled = torch.flatten(self.avgpool(self.stages(self.stem(fold_slices(x, self.in_channels)))), 1)
        return pooled.reshape(x.shape[0], x.shape[-1], FEATURES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, 1) of a batch (B, C, X, Y, Z)."""
        out: torch.Tensor = self.fc(self.slice_features(x).mean(dim=1))
        return out


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with ``heads`` heads from queries (N, Q, D) to a context (N, K, D)
    (self-attention when they are the same tokens): query, key and value projections and an output
    projection, as in ViT."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"the width {dim} must be a multiple of the heads ({heads})")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = nn.Dropout(dropout)
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the attended values (N, Q, D) and the attention weights (N, heads, Q, K)."""
        batch, count, dim = queries.shape
        head_dim = dim // self.heads
        query = self.query(queries).reshape(batch, count, self.heads, head_dim).transpose(1, 2)
        key_value = self.key_value(context).reshape(batch, context.shape[1], 2, self.heads, head_dim)
        key, value = key_value.permute(2, 0, 3, 1, 4).unbind(0)
        weights = torch.softmax(query @ key.transpose(-2, -1) * head_dim**-0.5, dim=-1)
        out = (self.attention_dropout(weights) @ value).transpose(1, 2).reshape(batch, count, dim)
        return self.proj_dropout(self.proj(out)), weights


class TransformerBlock(nn.Module):
    """A pre-norm transformer encoder block (ViT): tokens + attention(norm(tokens), norm(context)), then
    + MLP(norm(.)) with a GELU hidden layer of ``mlp_ratio`` times the width."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the updated tokens (N, Q, D) and the attention weights (N, heads, Q, K)."""
        attended, weights = self.attention(self.norm1(tokens), self.norm1(context))
        tokens = tokens + attended
        return tokens + self.mlp(self.norm2(tokens)), weights


class SpatialAttentionTransformer(nn.Module):
    """SAT: multi-head self-attention over the spatial positions of each slice's feature map. The positions
    (N, D, h, w) become h * w tokens with learned position embeddings (made for a ``grid`` x ``grid`` map,
    resized bilinearly to other sizes) after a learned class token; ``forward`` returns the normalised class
    token (N, D), the slice's embedding."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.block = TransformerBlock(dim, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim)
        nn.init.trunc_normal_(self.class_token, std=0.02)
        nn.init.trunc_normal_(self.position, std=0.02)

    def positions(self, height: int, width: int) -> torch.Tensor:
        """Return the position embeddings (1, height * width, D) of a height x width feature map."""
        grid = self.position[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        if (height, width) != (self.grid, self.grid):
            grid = F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return the embedding (N, D) of each slice's feature map (N, D, h, w)."""
        count, _, height, width = features.shape
        patches = features.flatten(2).transpose(1, 2) + self.positions(height, width)
        head = (self.class_token + self.position[:, :1]).expand(count, -1, -1)
        tokens = torch.cat([head, patches], dim=1)
        tokens, _ = self.block(tokens, tokens)
        out: torch.Tensor = self.norm(tokens[:, 0])
        return out


class CrossAttentionTransformer(nn.Module):
    """CAT: a learned query token attends across the slices of one neighbourhood (N, k, D), each with a
    learned embedding of its place in the neighbourhood, and so weighs the slices. ``forward`` returns the
    normalised query token (N, D), the neighbourhood's embedding, and the slice weights (N, k) (the
    attention averaged over heads)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, slices: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, slices, dim))
        self.block = TransformerBlock(dim, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim)
        nn.init.trunc_normal_(self.query, std=0.02)
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, slices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the embedding (N, D) and the slice weights (N, k) of neighbourhoods (N, k, D)."""
        count, size, _ = slices.shape
        query = self.query.expand(count, -1, -1)
        out, weights = self.block(query, slices + self.position[:, :size])
        return self.norm(out[:, 0]), weights.mean(dim=1)[:, 0]


class SCANet(nn.Module):
    """The spatial cross attention network of Zhang, Polson et al. (MIDL 2022). Every axial slice goes
    through a global 2D convolutional block (the ResNet-34 stem); neighbourhoods of ``neighbourhood``
    consecutive slices (every ``stride``-th start) are branches sharing one set of weights: the ResNet-34
    stages on each slice, the spatial attention transformer (SAT) on each slice's feature map, the cross
    attention transformer (CAT) weighing the neighbourhood's slices, and a two-class softmax. A weighted
    softmax combines the branches: p = sum_n a_n softmax(z_n), the weights a = softmax over branches of a
    learned score of each branch's embedding. ``forward`` returns logits (B, 1) = log p1 - log p0 of a
    batch (B, C, X, Y, Z), so sigmoid(logit) = p1, the probability of favourable recanalization.

    Choices where the paper is silent (it gives the input size, the modules and their order only):
    - NCCT and CTA enter as the two channels of each slice (early fusion), not as two streams.
    - the global 2D convolutional block is ResNet-34's stem (7x7 convolution, stride 2, batch norm, ReLU,
      max pooling), shared by all slices; a branch is ResNet-34's four stages (3, 4, 6, 3 basic blocks).
    - neighbourhoods of 3 consecutive slices with stride 1 (24 branches at 26 slices); the last window
      ends on the last slice when the stride does not reach it; fewer than 3 slices make one branch.
    - the shared-weight branch stages run once per slice, not once per neighbourhood (the same outputs;
      batch norm statistics in training count each slice once); batch norm as in torchvision's ResNet,
      its statistics taken over all slices of all patients in a batch.
    - the SAT is one ViT pre-norm encoder block over the 512-channel feature map (7x7 = 49 tokens at 224)
      with a class token and learned position embeddings (resized bilinearly at other input sizes); the
      slice's embedding is its normalised class token.
    - the CAT is one pre-norm block in which a learned query token attends to the neighbourhood's slice
      embeddings (plus learned within-neighbourhood position embeddings); the neighbourhood's embedding is
      its normalised output.
    - width 512 (ResNet-34's features, no projection), 8 heads of 64, MLP ratio 4 with GELU, dropout 0.1
      on attention weights and after projections, no embedding dropout.
    - each branch gives two-class logits by one shared linear layer; the branch weights are a softmax over
      branches of a shared linear score (no bias: it would cancel) of the branch embedding, so any number
      of slices works; the weighted softmax mixes the branches' probabilities, not their logits.
    - the output is one logit (log p1 - log p0) for BCE training rather than the two probabilities.
    - trained from scratch (no ImageNet weights); torchvision's ResNet initialisation, truncated normal
      (std 0.02) for the tokens and position embeddings, torch's defaults for linear and norm layers.
    """

    def __init__(
        self,
        in_channels: int = 2,
        neighbourhood: int = 3,
        stride: int = 1,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        image_size: int = 224,
    ) -> None:
        super().__init__()
        if min(in_channels, neighbourhood, stride, heads, image_size) < 1:
            raise ValueError("in_channels, neighbourhood, stride, heads and image_size must be >= 1")
        self.in_channels = in_channels
        self.neighbourhood = neighbourhood
        self.stride = stride
        self.backbone = ResNet34Trunk(in_channels)
        grid = max(image_size // 32, 1)
        self.spatial = SpatialAttentionTransformer(FEATURES, heads, mlp_ratio, dropout, grid)
        self.cross = CrossAttentionTransformer(FEATURES, heads, mlp_ratio, dropout, neighbourhood)
        self.classifier = nn.Linear(FEATURES, 2)
        self.branch_score = nn.Linear(FEATURES, 1, bias=False)  # a bias cancels in the softmax

    def windows(self, slices: int) -> list[int]:
        """Return the first slice of every neighbourhood of a volume of ``slices`` slices."""
        size = min(self.neighbourhood, slices)
        starts = list(range(0, slices - size + 1, self.stride))
        if starts[-1] != slices - size:
            starts.append(slices - size)
        return starts

    def branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return, for a batch (B, C, X, Y, Z) with N neighbourhoods of k slices: the branches' class
        log-probabilities (B, N, 2), their log weights (B, N) in the weighted softmax, and the CAT's slice
        weights (B, N, k)."""
        batch, depth = x.shape[0], x.shape[-1]
        slices = self.backbone.stem(fold_slices(x, self.in_channels))  # global 2D convolutional block
        embeddings = self.spatial(self.backbone.stages(slices)).reshape(batch, depth, FEATURES)
        size = min(self.neighbourhood, depth)
        starts = torch.tensor(self.windows(depth), dtype=torch.long, device=x.device)
        index = starts[:, None] + torch.arange(size, device=x.device)  # (N, k)
        groups = embeddings[:, index]  # (B, N, k, D)
        count = index.shape[0]
        branch, slice_weights = self.cross(groups.reshape(batch * count, size, FEATURES))
        branch = branch.reshape(batch, count, FEATURES)
        log_probabilities = F.log_softmax(self.classifier(branch), dim=-1)
        log_weights = F.log_softmax(self.branch_score(branch).squeeze(-1), dim=-1)
        return log_probabilities, log_weights, slice_weights.reshape(batch, count, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, 1) of a batch (B, C, X, Y, Z): log p1 - log p0 of the weighted softmax."""
        log_probabilities, log_weights, _ = self.branches(x)
        mixture = torch.logsumexp(log_probabilities + log_weights.unsqueeze(-1), dim=1)  # (B, 2): log p
        return mixture[:, 1:] - mixture[:, :1]


NETWORKS: dict[str, type[nn.Module]] = {"resnet34-2d": ResNet34Slices, "scanet": SCANet}
