"""The decoder-only language model: TransformerDecoder -> TransformerDecoderLayer, as in fairseq.

Every ``moe_freq``-th layer replaces its feed-forward block with an MOELayer and says so in
``is_moe_layer`` (fairseq: ``moe_freq != 0 and (layer_idx + 1) % moe_freq == 0``).
"""
import torch
import torch.nn.functional as F
from torch import nn

from tinymoe.moe_layer import Expert, MOELayer
from tinymoe.multihead_attention import MultiheadAttention


class TransformerDecoderLayer(nn.Module):
    def __init__(self, args, layer_idx: int):
        super().__init__()
        self.is_moe_layer = args.moe_freq != 0 and (layer_idx + 1) % args.moe_freq == 0
        self.self_attn_layer_norm = nn.LayerNorm(args.embed_dim)
        self.self_attn = MultiheadAttention(args.embed_dim, args.attention_heads)
        self.final_layer_norm = nn.LayerNorm(args.embed_dim)
        if self.is_moe_layer:
            self.moe_layer = MOELayer(
                args.embed_dim, args.ffn_dim, args.num_experts, args.moe_eval_capacity_token_fraction,
                expert_seed=args.seed * 100_003 + layer_idx * 1_009)
        else:
            self.ffn = Expert(args.embed_dim, args.ffn_dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        # pre-norm residual blocks (fairseq's --decoder-normalize-before)
        x = x + self.self_attn(self.self_attn_layer_norm(x), attn_mask)
        h = self.final_layer_norm(x)
        return x + (self.moe_layer(h) if self.is_moe_layer else self.ffn(h))


class TransformerDecoder(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.embed_dim)
        self.embed_positions = nn.Embedding(args.tokens_per_sample, args.embed_dim)
        self.layers = nn.ModuleList([TransformerDecoderLayer(args, i) for i in range(args.num_layers)])
        self.layer_norm = nn.LayerNorm(args.embed_dim)
        # fairseq's Embedding init: with the tied output projection, N(0, 1) would make the logits huge
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=args.embed_dim ** -0.5)
        nn.init.normal_(self.embed_positions.weight, mean=0.0, std=args.embed_dim ** -0.5)

    def forward(self, src_tokens: torch.Tensor):
        """src_tokens: (B, T). Returns (logits (B, T, V), extra) like fairseq's decoders."""
        bsz, seq_len = src_tokens.shape
        positions = torch.arange(seq_len, device=src_tokens.device)
        x = self.embed_tokens(src_tokens) + self.embed_positions(positions)[None]
        x = x.transpose(0, 1)  # (T, B, C), fairseq's layout inside the layers
        attn_mask = torch.triu(
            torch.full((seq_len, seq_len), float("-inf"), device=x.device, dtype=x.dtype), diagonal=1)
        for layer in self.layers:
            x = layer(x, attn_mask)
        x = self.layer_norm(x).transpose(0, 1)
        # output projection tied to the input embedding (--share-decoder-input-output-embed)
        logits = F.linear(x, self.embed_tokens.weight)
        return logits, {}

    def moe_layers(self):
        return [layer.moe_layer for layer in self.layers if layer.is_moe_layer]
