"""The infarct-core task's networks in plain torch (de Vries et al., MIDL 2021): a Linformer over the
frames of a 32 x 32 x 32 CTP patch classifying its 4 central pixels (``ctp-transformer``), the
transformer's attention map (TFA) over one slice (``attention_map``), and a traditional U-Net that
segments the core from the TFA, the first CTP frame and the maximum-intensity frame (``ctp-unet``),
trained with the generalised Dice loss (Sudre et al. 2017, ``generalized_dice_loss``).

Linformer (Wang et al. 2020): keys and values are projected along the sequence, length n -> k, by learned
matrices E and F before the softmax, so attention costs O(n k). Written for this project after reading
lucidrains' ``linformer`` (headwise sharing, pre-norm residual blocks with a GELU feed-forward).

Patch convention, shared with ``strokedata.sampling.PatchDataset`` / ``extract_patch``: the patch of
centre (x, y) covers rows x - 15 .. x + 16 and columns y - 15 .. y + 16 (the centre at patch index
(size - 1) // 2 = 15), so a patch starting at offset o has its 4 central pixels at o + 15 and o + 16,
i.e. x .. x + 1 (the centre is the top-left pixel of the central 2 x 2). PatchDataset's patches are
(channels, frames, size, size); the networks here take (channels, x, y, frames): give them
``patch.permute(0, 2, 3, 1)`` (numpy: ``patch.transpose(0, 2, 3, 1)``).
Imports torch: build these lazily from a registry builder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinformerSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values are projected along the sequence (length
    ``seq_len`` -> ``k``) by two learned matrices (E for keys, F for values) shared by all heads."""

    def __init__(self, dim: int, seq_len: int, k: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.heads, self.dim_head = heads, dim // heads
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj_k = nn.Linear(seq_len, k, bias=False)  # E: (k, n), torch's Linear initialisation
        self.proj_v = nn.Linear(seq_len, k, bias=False)  # F
        self.dropout = nn.Dropout(dropout)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, n, dim) attention output of (B, n, dim) tokens."""
        batch, length, dim = x.shape
        query, key, value = self.to_qkv(x).chunk(3, dim=-1)
        key = self.proj_k(key.transpose(1, 2)).transpose(1, 2)  # (B, k, dim)
        value = self.proj_v(value.transpose(1, 2)).transpose(1, 2)
        query = query.reshape(batch, length, self.heads, self.dim_head).transpose(1, 2)  # (B, h, n, d)
        key = key.reshape(batch, -1, self.heads, self.dim_head).transpose(1, 2)  # (B, h, k, d)
        value = value.reshape(batch, -1, self.heads, self.dim_head).transpose(1, 2)
        weights = torch.softmax(query @ key.transpose(-1, -2) * self.dim_head**-0.5, dim=-1)  # (B, h, n, k)
        out = (self.dropout(weights) @ value).transpose(1, 2).reshape(batch, length, dim)
        projected: torch.Tensor = self.to_out(out)
        return projected


class LinformerBlock(nn.Module):
    """A pre-norm residual block: x + attention(LN(x)), then x + feed-forward(LN(x))."""

    def __init__(self, dim: int, seq_len: int, k: int, heads: int, dropout: float, mult: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = LinformerSelfAttention(dim, seq_len, k, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block's (B, n, dim) output."""
        x = x + self.attention(self.norm1(x))
        out: torch.Tensor = x + self.feed_forward(self.norm2(x))
        return out


class CTPTransformer(nn.Module):
    """002's transformer: is the central 2 x 2 of a CTP patch core? Input (B, C, P, P, T) float32
    (channels: the slice and its mirrored registered copy; x; y; frames); output (B, 1) logits.

    Each frame (C x P x P = 2048 values, flattened channel-major: (c, x, y)) -> a learned linear map to
    ``dim``; a learned classification token is prepended; learned additive positional embeddings
    ((T + 1) x dim); ``depth`` Linformer blocks with ``heads`` heads; the token's output -> LayerNorm ->
    linear -> 1 logit (train with BCE-with-logits, the binary form of the paper's cross-entropy).

    Choices where the paper is silent:
      k = 16: the projected key/value length (33 -> 16); vit-pytorch's example with the paper's
        dim 128 / depth 12 / heads 8 has k = 64, which for 33 tokens would project up, not down.
      projections: headwise sharing (one E and one F per layer for all heads, E != F), no bias.
      E, F initialised as ``nn.Linear(T + 1, k)``: uniform +-1/sqrt(T + 1).
      blocks: pre-norm (LayerNorm), no final norm inside the encoder; a LayerNorm before the head.
      feed-forward: dim -> 4 dim -> dim with exact GELU.
      dropout = 0.1 on the attention weights and in the feed-forward (none on embeddings).
      q, k, v projections without bias; the attention output projection with bias.
      class token and positional embeddings initialised N(0, 0.02^2); Linears torch's default.
      frame flattening order (c, x, y): the paper writes HWC; a learned linear map makes the order a
        permutation of its columns.
    """

    def __init__(
        self,
        in_channels: int = 2,
        patch: int = 32,
        frames: int = 32,
        dim: int = 128,
        depth: int = 12,
        heads: int = 8,
        k: int = 16,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("patch", patch), ("frames", frames)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, not {value}")
        if depth < 1 or k < 1:
            raise ValueError(f"depth and k must be >= 1, not {depth} and {k}")
        self.in_channels, self.patch, self.frames = in_channels, patch, frames
        self.embed = nn.Linear(in_channels * patch * patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, frames + 1, dim))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embedding, std=0.02)
        self.blocks = nn.ModuleList(LinformerBlock(dim, frames + 1, k, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, 1) logits that the central 2 x 2 of each (C, P, P, T) patch is core."""
        expected = (self.in_channels, self.patch, self.patch, self.frames)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"CTPTransformer expects (B, {', '.join(map(str, expected))}), not {tuple(x.shape)}"
            )
        batch = x.shape[0]
        tokens = self.embed(x.permute(0, 4, 1, 2, 3).reshape(batch, self.frames, -1))  # (B, T, dim)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1) + self.pos_embedding
        for block in self.blocks:
            tokens = block(tokens)
        logits: torch.Tensor = self.head(self.norm(tokens[:, 0]))
        return logits


def _double_conv(inputs: int, outputs: int) -> nn.Sequential:
    """Return (3x3 conv, batch norm, ReLU) twice, 'same' padding, convolutions without bias."""
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class UNet2d(nn.Module):
    """002's segmentation network: a traditional U-Net (Ronneberger et al. 2015) with three
    down-sampling steps. Input (B, 3, H, W) (TFA, first CTP frame, maximum-intensity frame), H and W
    multiples of 8; output (B, 1, H, W) core logits.

    Widths base, 2 base, 4 base at the three encoder levels and 8 base at the bottleneck; each level two
    3x3 convolutions; 2x2 max pooling down; a 2x2 stride-2 transposed convolution up (halving the
    channels), concatenated with the encoder's features; a 1x1 convolution to one logit.

    Choices where the paper is silent:
      base width 64 (Ronneberger's), so 64-128-256-512.
      'same' (padding 1) convolutions rather than the original's unpadded ones: output size = input size.
      batch normalisation after every convolution (convolutions then without bias), ReLU.
      up-sampling by transposed convolution (with bias), no dropout.
      one output channel (sigmoid), the generalised Dice loss taking background as 1 - p.
    """

    def __init__(self, in_channels: int = 3, base: int = 64, out_channels: int = 1) -> None:
        super().__init__()
        widths = [base, 2 * base, 4 * base, 8 * base]
        self.encoders = nn.ModuleList(
            _double_conv(a, b) for a, b in zip([in_channels, *widths[:2]], widths[:3], strict=True)
        )
        self.bottleneck = _double_conv(widths[2], widths[3])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w, w // 2, 2, stride=2) for w in widths[:0:-1])
        self.decoders = nn.ModuleList(_double_conv(w, w // 2) for w in widths[:0:-1])
        self.out = nn.Conv2d(base, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, out_channels, H, W) logits of a (B, in_channels, H, W) input."""
        if x.dim() != 4 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"UNet2d expects (B, C, H, W) with H, W multiples of 8, not {tuple(x.shape)}")
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([skip, up(x)], dim=1))
        logits: torch.Tensor = self.out(x)
        return logits


def generalized_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Return the scalar generalised Dice loss (Sudre et al. 2017) of binary ``logits`` against a 0/1
    ``target`` of the same shape (e.g. (B, 1, H, W)), over the whole batch and both classes:

        1 - (2 sum_l w_l sum_n r_ln p_ln + eps) / (sum_l w_l sum_n (r_ln + p_ln) + eps),

    l in {core: p = sigmoid(logits), r = target; background: 1 - p, 1 - target}, n every pixel of every
    image, w_l = 1 / (sum_n r_ln)^2 normalised to sum to 1 (the ratio does not change; eps then sits on
    a count scale). A class absent from the batch's reference gets the other class's weight instead of
    infinity (as NiftyNet's implementation by the same authors does). 0 for a perfect prediction.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    p = torch.sigmoid(logits.float()).reshape(-1)
    r = target.float().reshape(-1)
    probs, refs = torch.stack([p, 1 - p]), torch.stack([r, 1 - r])  # (2, N)
    volumes = refs.sum(dim=1)
    present = volumes > 0
    weights = torch.where(present, volumes.clamp_min(1e-30) ** -2, torch.zeros_like(volumes))
    weights = torch.where(present, weights, weights.max())
    weights = weights / weights.sum()
    intersection = (weights * (refs * probs).sum(dim=1)).sum()
    union = (weights * (refs + probs).sum(dim=1)).sum()
    return 1 - (2 * intersection + eps) / (union + eps)


def attention_map(
    model: nn.Module, slice_series: torch.Tensor, stride: int = 2, batch: int = 256, patch: int = 32
) -> torch.Tensor:
    """Return the (X, Y) float32 transformer attention map (TFA) of one slice: the sigmoid probability
    of ``model`` (a ``CTPTransformer`` or any module mapping (B, C, patch, patch, T) to (B, 1) logits)
    over overlapping patches of ``slice_series`` (C, X, Y, T), on its device.

    Patches are cut as ``PatchDataset`` cuts them: centre (x, y) at patch index (patch - 1) // 2, zeros
    beyond the slice (its ``padding="constant"``). Blocks of ``stride`` x ``stride`` pixels tile the slice
    from (0, 0); block (b_x, b_y) takes the probability of the patch whose central stride x stride pixels
    it is: the patch starting at (b_x - (patch - stride) // 2, b_y - ...). With stride 2 that is the patch
    of centre (b_x, b_y) (b even) and its 4 central pixels b .. b + 1; with stride 1 every pixel's own
    patch; with stride 4 the patch of centre b + 1 and its central 4 x 4. Every pixel is written once
    (blocks beyond X, Y are cut off). The slice is padded by (patch - stride) // 2 before and what the last
    patch needs after (15 and 16 or 17 for stride 2).

    Runs ``batch`` patches at a time under ``torch.inference_mode`` in ``model.eval()`` (its training
    flag is restored after); the result is an ordinary tensor (usable as a training input).
    """
    if slice_series.dim() != 4:
        raise ValueError(f"slice_series must be (C, X, Y, T), not {tuple(slice_series.shape)}")
    if not 1 <= stride <= patch:
        raise ValueError(f"stride must be in 1 .. {patch}, not {stride}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch}")
    _, size_x, size_y, _ = slice_series.shape
    blocks_x, blocks_y = -(-size_x // stride), -(-size_y // stride)
    before = (patch - stride) // 2
    after_x = patch - stride - before + blocks_x * stride - size_x
    after_y = patch - stride - before + blocks_y * stride - size_y
    padded = F.pad(slice_series.to(torch.float32), (0, 0, before, after_y, before, after_x))
    windows = padded.unfold(1, patch, stride).unfold(2, patch, stride)  # (C, bx, by, T, Px, Py): views
    windows = windows.permute(1, 2, 0, 4, 5, 3)  # (bx, by, C, Px, Py, T)
    total = blocks_x * blocks_y
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            order = torch.arange(total, device=slice_series.device)
            chunks = []
            for start in range(0, total, batch):
                index = order[start : start + batch]
                chunks.append(torch.sigmoid(model(windows[index // blocks_y, index % blocks_y])).reshape(-1))
            grid = torch.cat(chunks).reshape(blocks_x, blocks_y)
    finally:
        model.train(was_training)
    grid = grid.clone()  # an ordinary tensor, no longer an inference one
    full = grid[:, None, :, None].expand(blocks_x, stride, blocks_y, stride)
    return full.reshape(blocks_x * stride, blocks_y * stride)[:size_x, :size_y].to(torch.float32).contiguous()
