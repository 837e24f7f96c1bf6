"""A deterministic synthetic corpus, sharded across ranks.

Text is a random walk over a fixed sparse successor table (each token has a few likely successors),
so it has structure a language model could learn, and it needs no files. Batch ``g`` of the corpus
depends only on the seed and ``g``, never on the world size: rank ``r`` of ``n`` evaluates batches
``r, r + n, r + 2n, ...``, so one rank with 4 steps sees exactly what two ranks with 2 steps see.
"""
import torch

SUCCESSORS = 8


def successor_table(vocab_size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (vocab_size, SUCCESSORS), generator=gen)


def make_batch(table: torch.Tensor, global_index: int, batch_size: int, tokens_per_sample: int, seed: int):
    """One batch as fairseq's language_modeling task gives it: source, target shifted by one."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + global_index)
    vocab_size = table.shape[0]
    walk = torch.empty(batch_size, tokens_per_sample + 1, dtype=torch.long)
    walk[:, 0] = torch.randint(0, vocab_size, (batch_size,), generator=gen)
    choices = torch.randint(0, SUCCESSORS, (batch_size, tokens_per_sample), generator=gen)
    for t in range(tokens_per_sample):
        walk[:, t + 1] = table[walk[:, t], choices[:, t]]
    return {
        "id": torch.arange(batch_size) + global_index * batch_size,
        "net_input": {"src_tokens": walk[:, :-1]},
        "target": walk[:, 1:],
        "ntokens": batch_size * tokens_per_sample,
        "nsentences": batch_size,
    }


def shard_batches(rank: int, world_size: int, steps: int, batch_size: int, tokens_per_sample: int,
                  vocab_size: int, seed: int):
    """This rank's ``steps`` batches, generated lazily."""
    table = successor_table(vocab_size, seed)
    for step in range(steps):
        yield make_batch(table, step * world_size + rank, batch_size, tokens_per_sample, seed)
