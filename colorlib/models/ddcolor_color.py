"""DDColor's colour decoder: learnable colour queries that read the pixel decoder's scales.

Design (Kang et al., ICCV 2023; names as in the released checkpoints):

* :class:`ColorDecoder`: learnable colour queries refined by blocks of cross-attention over one
  scale of the pixel decoder (:mod:`colorlib.models.ddcolor_pixel`; with level embeddings and
  sine positional encodings), then self-attention, then a feed-forward layer, cycling over the
  scales (1/16, 1/8, 1/4); a final MLP turns each query into a colour embedding. Post-norm, as
  in Mask2Former.
* Attention keeps ``nn.MultiheadAttention``'s parameters (``in_proj_weight``, ``in_proj_bias``,
  ``out_proj``) but runs batch-first through fused ``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["sine_position_encoding", "Attention", "ColorDecoder"]


def sine_position_encoding(height: int, width: int, dim: int, device=None) -> Tensor:
    """DETR's normalised sine encoding of a ``height x width`` grid: ``(height * width, dim)``.

    The first ``dim / 2`` channels encode the row, the rest the column; positions are
    ``1..n`` scaled to ``(0, 2 pi]``. Row-major order, as ``x.flatten(2)`` of a map.
    """
    num_feats = dim // 2
    steps = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = 10000.0 ** (2 * (steps // 2) / num_feats)

    def encode(n: int) -> Tensor:  # (n, num_feats)
        pos = torch.arange(1, n + 1, dtype=torch.float32, device=device)
        pos = pos / (torch.tensor(float(n), device=device) + 1e-6) * (2 * math.pi)
        pos = pos[:, None] / dim_t
        return torch.stack((pos[:, 0::2].sin(), pos[:, 1::2].cos()), dim=2).flatten(1)

    rows = encode(height)[:, None, :].expand(height, width, num_feats)
    cols = encode(width)[None, :, :].expand(height, width, num_feats)
    return torch.cat((rows, cols), dim=2).flatten(0, 1)


class Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameters, batch-first, fused.

    ``dim``: model width ``D``; ``num_heads`` must divide it.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """``(B, Lq, D)``, ``(B, Lk, D)``, ``(B, Lk, D)`` -> ``(B, Lq, D)``."""
        w, b = self.in_proj_weight, self.in_proj_bias
        dim = w.shape[1]
        if key is query:  # self-attention: one matmul for q and k
            q, k = F.linear(query, w[: 2 * dim], b[: 2 * dim]).chunk(2, dim=-1)
        else:
            q, k = F.linear(query, w[:dim], b[:dim]), F.linear(key, w[dim : 2 * dim], b[dim:-dim])
        v = F.linear(value, w[2 * dim :], b[2 * dim :])
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, Lq, D / heads)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class CrossAttentionLayer(nn.Module):
    """``norm(q + attn(q + query_pos, key, value))``: queries read one scale of the image."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.multihead_attn = Attention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: Tensor, key: Tensor, value: Tensor, query_pos: Tensor) -> Tensor:
        return self.norm(queries + self.multihead_attn(queries + query_pos, key, value))


class SelfAttentionLayer(nn.Module):
    """``norm(q + attn(q + query_pos, q + query_pos, q))``: queries exchange information."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: Tensor, query_pos: Tensor) -> Tensor:
        qk = queries + query_pos
        return self.norm(queries + self.self_attn(qk, qk, queries))


class FFNLayer(nn.Module):
    """``norm(q + linear2(relu(linear1(q))))``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)
        nn.init.xavier_uniform_(self.linear1.weight)
        nn.init.xavier_uniform_(self.linear2.weight)

    def forward(self, queries: Tensor) -> Tensor:
        return self.norm(queries + self.linear2(F.relu(self.linear1(queries))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (not after the last)."""

    def __init__(self, dim: int, out_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        sizes = [dim] * num_layers + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class ColorDecoder(nn.Module):
    """Colour queries that attend to the pixel decoder's scales: ``scales -> (B, Q, E)``.

    Args:
        in_channels: channels of the scales it reads ((512, 512, 256) in DDColor).
        hidden_dim: query width ``D`` (256).
        num_queries: colour queries ``Q`` (100).
        num_heads: attention heads (8).
        ffn_dim: feed-forward width (2048).
        num_blocks: cross/self/FFN blocks, cycling over the scales (9 = 3 rounds).
        embed_dim: width ``E`` of the output colour embeddings (= the pixel embedding's).
        gradient_checkpointing: recompute each block during backward to save memory.
    """

    def __init__(
        self,
        in_channels: Sequence[int] = (512, 512, 256),
        hidden_dim: int = 256,
        num_queries: int = 100,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        num_blocks: int = 9,
        embed_dim: int = 256,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if hidden_dim % 2:
            raise ValueError(f"hidden_dim must be even (sine encoding), got {hidden_dim}")
        self.gradient_checkpointing = gradient_checkpointing
        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # the colour queries
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # their positional part
        self.level_embed = nn.Embedding(len(in_channels), hidden_dim)  # which scale a key is
        self.input_proj = nn.ModuleList(nn.Conv2d(c, hidden_dim, 1) for c in in_channels)
        for conv in self.input_proj:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)
        blocks = range(num_blocks)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, num_heads) for _ in blocks
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, num_heads) for _ in blocks
        )
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, ffn_dim) for _ in blocks)
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.color_embed = MLP(hidden_dim, embed_dim, 3)

    def _tokens(self, level: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """One scale ``(B, C, h, w)`` -> attention keys and values ``(B, h * w, D)``."""
        conv = self.input_proj[level]
        tokens = x.permute(0, 2, 3, 1).flatten(1, 2)  # (B, h*w, C); a view if channels-last
        value = F.linear(tokens, conv.weight.flatten(1), conv.bias) + self.level_embed.weight[level]
        pos = sine_position_encoding(x.shape[2], x.shape[3], value.shape[-1], x.device)
        return value + pos.to(value.dtype), value  # keys carry the position, values do not

    def _block(self, i: int, queries: Tensor, key: Tensor, value: Tensor, pos: Tensor) -> Tensor:
        queries = self.transformer_cross_attention_layers[i](queries, key, value, pos)
        queries = self.transformer_self_attention_layers[i](queries, pos)
        return self.transformer_ffn_layers[i](queries)

    def forward(self, scales: Sequence[Tensor]) -> Tensor:
        """``len(in_channels)`` maps ``(B, C_l, h_l, w_l)`` -> colour embeddings ``(B, Q, E)``."""
        if len(scales) != len(self.input_proj):
            raise ValueError(f"expected {len(self.input_proj)} scales, got {len(scales)}")
        num_blocks = len(self.transformer_ffn_layers)
        # keys and values of each scale, computed once (scales no block reads are skipped)
        memory = [self._tokens(level, x) for level, x in enumerate(scales[:num_blocks])]
        batch = scales[0].shape[0]
        pos = self.query_embed.weight.expand(batch, -1, -1)  # (B, Q, D)
        queries = self.query_feat.weight.expand(batch, -1, -1)
        for i in range(num_blocks):
            key, value = memory[i % len(scales)]
            if self.gradient_checkpointing and torch.is_grad_enabled():
                queries = checkpoint(self._block, i, queries, key, value, pos, use_reentrant=False)
            else:
                queries = self._block(i, queries, key, value, pos)
        return self.color_embed(self.decoder_norm(queries))
