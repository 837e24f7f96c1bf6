"""The Mixture-of-Experts layer: top-2 gating, capacity, experts sharded across ranks.

Shaped like fairseq's MOELayer (fairseq/modules/moe/moe_layer.py, top2gate.py on the moe branch):
tokens are routed to their two best experts, each expert takes at most ``capacity`` tokens, the
dispatched tokens travel to the rank that holds their expert in one ``all_to_all_single`` and come
back in a second one. Every rank takes part in both collectives on every forward, as in fairseq.
"""
import math
from typing import Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def capacity_for(num_tokens: int, num_experts: int, eval_capacity_token_fraction: float) -> int:
    """Tokens one expert takes from one rank's batch.

    As fairseq's Top2Gate at evaluation: ``ceil(fraction * tokens)`` when the fraction is positive;
    otherwise (fairseq's -1.0) the training capacity, ``2 * ceil(tokens / experts)``.
    """
    if eval_capacity_token_fraction > 0:
        return max(1, math.ceil(eval_capacity_token_fraction * num_tokens))
    return 2 * math.ceil(num_tokens / num_experts)


def top2gating(logits: torch.Tensor, capacity: int) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """logits: (S, E). Returns combine weights (S, E, C), dispatch mask (S, E, C), tokens dropped."""
    gates = F.softmax(logits.float(), dim=1)
    num_experts = gates.shape[1]

    index1 = torch.argmax(gates, dim=1)
    mask1 = F.one_hot(index1, num_experts)
    # the second choice is the best expert other than the first
    index2 = torch.argmax(logits.float().masked_fill(mask1.bool(), float("-inf")), dim=1)
    mask2 = F.one_hot(index2, num_experts)

    gates1 = (gates * mask1).sum(dim=1)
    gates2 = (gates * mask2).sum(dim=1)
    denom = (gates1 + gates2).clamp(min=torch.finfo(gates.dtype).eps)
    gates1, gates2 = gates1 / denom, gates2 / denom

    # slot of each token in its expert's buffer: first choices fill the buffers before second ones
    locations1 = torch.cumsum(mask1, dim=0) - 1
    locations2 = torch.cumsum(mask2, dim=0) - 1 + mask1.sum(dim=0, keepdim=True)
    wanted = int(mask1.sum() + mask2.sum())
    mask1 = mask1 * (locations1 < capacity)
    mask2 = mask2 * (locations2 < capacity)
    dropped = wanted - int(mask1.sum() + mask2.sum())

    slot1 = F.one_hot((locations1 * mask1).sum(dim=1), capacity)
    slot2 = F.one_hot((locations2 * mask2).sum(dim=1), capacity)
    combine = (gates1[:, None] * mask1)[:, :, None] * slot1[:, None, :] + \
              (gates2[:, None] * mask2)[:, :, None] * slot2[:, None, :]
    return combine, combine > 0, dropped


class Top2Gate(nn.Module):
    def __init__(self, embed_dim: int, num_experts: int, eval_capacity_token_fraction: float):
        super().__init__()
        self.wg = nn.Linear(embed_dim, num_experts, bias=False)
        self.num_experts = num_experts
        self.eval_capacity_token_fraction = eval_capacity_token_fraction

    def forward(self, tokens: torch.Tensor):
        capacity = capacity_for(tokens.shape[0], self.num_experts, self.eval_capacity_token_fraction)
        return top2gating(self.wg(tokens), capacity)


class Expert(nn.Module):
    """One expert: the position-wise feed-forward block."""

    def __init__(self, embed_dim: int, ffn_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class MOELayer(nn.Module):
    def __init__(self, embed_dim: int, ffn_dim: int, num_experts: int, eval_capacity_token_fraction: float,
                 expert_seed: int):
        super().__init__()
        world_size = dist.get_world_size()
        rank = dist.get_rank()
        if num_experts % world_size != 0:
            raise ValueError(
                f"--num-experts {num_experts} is not divisible by the world size {world_size}: "
                "every rank must hold the same number of experts")
        self.world_size = world_size
        self.num_local_experts = num_experts // world_size
        self.first_local_expert = rank * self.num_local_experts
        self.gate = Top2Gate(embed_dim, num_experts, eval_capacity_token_fraction)
        experts = []
        for local in range(self.num_local_experts):
            # Each expert draws its weights from its own seed, so the model is the same whatever the
            # world size, and building a rank's share does not shift the RNG of the shared weights.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(expert_seed + self.first_local_expert + local)
                experts.append(Expert(embed_dim, ffn_dim))
        self.experts = nn.ModuleList(experts)
        # what the layer did, for the workload's MoE summary line
        self.all_to_all_calls = 0
        self.assignments = 0
        self.remote_assignments = 0
        self.dropped_assignments = 0

    def _all_to_all(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        dist.all_to_all_single(out, x.contiguous())
        self.all_to_all_calls += 1
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (T, B, C) -> (T, B, C)."""
        d_model = x.shape[-1]
        tokens = x.reshape(-1, d_model)
        combine, dispatch, dropped = self.gate(tokens)
        self._count(dispatch, dropped)

        # (E, capacity, C): expert e's buffer; experts are laid out rank by rank, so the first
        # dimension splits evenly into one chunk per rank
        dispatched = torch.einsum("sec,sm->ecm", dispatch.to(x.dtype), tokens)
        received = self._all_to_all(dispatched)
        # (ranks, local experts, capacity, C): what every rank sent to the experts held here
        received = received.reshape(self.world_size, self.num_local_experts, -1, d_model)
        outputs = torch.stack(
            [expert(received[:, i].reshape(-1, d_model)).reshape(self.world_size, -1, d_model)
             for i, expert in enumerate(self.experts)],
            dim=1,
        )
        returned = self._all_to_all(outputs.reshape(dispatched.shape))
        combined = torch.einsum("sec,ecm->sm", combine.to(x.dtype), returned)
        return combined.reshape(x.shape)

    def _count(self, dispatch: torch.Tensor, dropped: int) -> None:
        per_expert = dispatch.sum(dim=(0, 2))
        local = per_expert[self.first_local_expert:self.first_local_expert + self.num_local_experts]
        self.assignments += int(per_expert.sum()) + dropped
        self.remote_assignments += int(per_expert.sum() - local.sum())
        self.dropped_assignments += dropped
