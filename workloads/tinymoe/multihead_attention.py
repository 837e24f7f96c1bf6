"""Causal multi-head self-attention, laid out as fairseq's (inputs are Time x Batch x Channel)."""
import math

import torch
from torch import nn


class MultiheadAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"--embed-dim {embed_dim} must be divisible by --attention-heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """query: (T, B, C); attn_mask: (T, T) additive mask (-inf above the diagonal)."""
        tgt_len, bsz, _ = query.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            # (T, B, C) -> (B * heads, T, head_dim)
            return x.reshape(tgt_len, bsz * self.num_heads, self.head_dim).transpose(0, 1)

        q = heads(self.q_proj(query)) / math.sqrt(self.head_dim)
        k = heads(self.k_proj(query))
        v = heads(self.v_proj(query))
        weights = torch.softmax(torch.bmm(q, k.transpose(1, 2)) + attn_mask, dim=-1)
        out = torch.bmm(weights, v).transpose(0, 1).reshape(tgt_len, bsz, self.embed_dim)
        return self.out_proj(out)
