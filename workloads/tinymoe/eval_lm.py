"""Evaluate tinymoe's perplexity on its synthetic corpus, the way fairseq_cli.eval_lm does.

Takes fairseq's distributed flags (one process per rank, ``--distributed-no-spawn``) and the eval_lm
flags moe-run passes, and prints fairseq's summary lines (moe branch format), which moe-run parses:
    Evaluated 2,048 tokens in 0.4s (5120.00 tokens/s)
    valid Loss (base 2): 9.9658, Perplexity: 1000.12
Token count and loss are summed over all ranks; the time is this rank's time in ``eval_lm``.
"""
import argparse
import ast
import logging
import math
import os
import socket
import sys
import time

import torch
import torch.distributed as dist

from tinymoe.data import shard_batches
from tinymoe.models import TransformerDecoder
from tinymoe.sequence_scorer import SequenceScorer

logging.basicConfig(
    format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
    datefmt="%Y-%m-%d %H:%M:%S",
    level=os.environ.get("LOGLEVEL", "INFO").upper(),
    stream=sys.stdout,
)
logger = logging.getLogger("tinymoe.eval_lm")

# fairseq's own default for --moe-eval-capacity-token-fraction is -1 (use the training capacity);
# tinymoe defaults to 0.25 so that evaluation capacity, the knob the seed's runs turn, is in play.
# Any value <= 0 selects the training capacity, 2 * ceil(tokens / experts).
DEFAULT_EVAL_CAPACITY_TOKEN_FRACTION = 0.25
KNOWN_OVERRIDES = ("moe_eval_capacity_token_fraction", "world_size")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinymoe.eval_lm", description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="run on the CPU (with the gloo backend)")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only; ignored on the CPU)")
    p.add_argument("--tokens-per-sample", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--max-valid-steps", type=int, default=4, help="batches each rank evaluates")
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--ffn-dim", type=int, default=128)
    p.add_argument("--attention-heads", type=int, default=4)
    p.add_argument("--vocab-size", type=int, default=1000)
    p.add_argument("--num-experts", type=int, default=4, help="experts per MoE layer, sharded across ranks")
    p.add_argument("--moe-freq", type=int, default=2, help="an MoE layer every N layers (0: dense)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model-overrides", default="{}", help="Python dict, e.g. \"{'moe_eval_capacity_token_fraction': 0.1}\"")
    p.add_argument("--distributed-init-method", default=None, help="tcp://HOST:PORT")
    p.add_argument("--distributed-world-size", type=int, default=1)
    p.add_argument("--distributed-rank", type=int, default=0)
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--distributed-no-spawn", action="store_true", help="accepted for fairseq compatibility: one process per rank")
    p.add_argument("--distributed-backend", choices=("gloo", "nccl"), default=None)
    return p


def parse_model_overrides(text: str, world_size: int) -> dict:
    try:
        overrides = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise SystemExit(f"--model-overrides: not a Python dict literal ({e}): {text}")
    if not isinstance(overrides, dict):
        raise SystemExit(f"--model-overrides: expected a dict, got {type(overrides).__name__}: {text}")
    unknown = sorted(set(overrides) - set(KNOWN_OVERRIDES))
    if unknown:
        raise SystemExit(f"--model-overrides: unknown key(s) {unknown}; tinymoe knows {list(KNOWN_OVERRIDES)}")
    if "world_size" in overrides and overrides["world_size"] != world_size:
        raise SystemExit(f"--model-overrides: world_size {overrides['world_size']} differs from "
                         f"--distributed-world-size {world_size}")
    return overrides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(args) -> torch.device:
    use_cuda = not args.cpu
    if use_cuda and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: pass --cpu (with --distributed-backend gloo)")
    backend = args.distributed_backend or ("nccl" if use_cuda else "gloo")
    if backend == "nccl" and not use_cuda:
        raise SystemExit("--distributed-backend nccl needs CUDA; use gloo with --cpu")
    if use_cuda:
        torch.cuda.set_device(args.device_id)
    init_method = args.distributed_init_method
    if init_method is None:
        if args.distributed_world_size != 1:
            raise SystemExit("--distributed-init-method is required with more than one rank")
        init_method = f"tcp://127.0.0.1:{_free_port()}"
    dist.init_process_group(backend, init_method=init_method, world_size=args.distributed_world_size,
                            rank=args.distributed_rank)
    return torch.device("cuda", args.device_id) if use_cuda else torch.device("cpu")


def _move(sample, device):
    if torch.is_tensor(sample):
        return sample.to(device, non_blocking=True)
    if isinstance(sample, dict):
        return {k: _move(v, device) for k, v in sample.items()}
    return sample


def _sum_over_ranks(values, device):
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def eval_lm(models, batch_iterator, device=None, max_valid_steps=None):
    """The evaluation loop (moe-run's profiled region): score every batch, then sum over ranks."""
    start = time.time()
    if device is None:
        device = next(models[0].parameters()).device
    scorer = SequenceScorer()
    score_sum, count, ntokens = 0.0, 0, 0
    for i, sample in enumerate(batch_iterator):
        if max_valid_steps is not None and i >= max_valid_steps:
            break
        sample = _move(sample, device)
        hypos = scorer.generate(models, sample)
        ntokens += sample["ntokens"]
        for hypos_i in hypos:
            pos_scores = hypos_i[0]["positional_scores"].float()
            score_sum += float(pos_scores.sum())
            count += pos_scores.numel()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    score_sum, count, ntokens = _sum_over_ranks([score_sum, count, ntokens], device)
    avg_nll_loss = -score_sum / count / math.log(2) if count > 0 else 0.0  # base 2
    elapsed = time.time() - start
    ntokens = int(ntokens)
    logger.info(f"Evaluated {ntokens:,} tokens in {elapsed:.1f}s ({ntokens / elapsed:.2f} tokens/s)")
    return {"loss": avg_nll_loss, "perplexity": 2 ** avg_nll_loss, "ntok_total": ntokens}


def main(args) -> None:
    overrides = parse_model_overrides(args.model_overrides, args.distributed_world_size)
    args.moe_eval_capacity_token_fraction = float(
        overrides.get("moe_eval_capacity_token_fraction", DEFAULT_EVAL_CAPACITY_TOKEN_FRACTION))
    device = init_distributed(args)
    try:
        torch.manual_seed(args.seed)  # same shared weights on every rank
        model = TransformerDecoder(args).eval()
        if args.fp16:
            if device.type == "cuda":
                model = model.half()
            else:
                logger.warning("--fp16 ignored on the CPU")
        model = model.to(device)
        rank, world_size = dist.get_rank(), dist.get_world_size()
        logger.info(f"rank {rank}/{world_size} on {device}: {args.num_layers} layers, "
                    f"{len(model.moe_layers())} MoE layers, {args.num_experts} experts "
                    f"({args.num_experts // world_size} on this rank), "
                    f"eval capacity token fraction {args.moe_eval_capacity_token_fraction}")
        batches = shard_batches(rank, world_size, args.max_valid_steps, args.batch_size,
                                args.tokens_per_sample, args.vocab_size, args.seed)
        results = eval_lm([model], batches, device=device, max_valid_steps=args.max_valid_steps)
        logger.info("valid Loss (base 2): {:.4f}, Perplexity: {:.2f}".format(results["loss"], results["perplexity"]))
        moe = model.moe_layers()
        logger.info(
            "MoE: {} all_to_all calls, {} of {} expert assignments sent to other ranks, {} dropped over capacity".format(
                sum(m.all_to_all_calls for m in moe), sum(m.remote_assignments for m in moe),
                sum(m.assignments for m in moe), sum(m.dropped_assignments for m in moe)))
    finally:
        dist.destroy_process_group()


def cli_main(argv=None) -> None:
    main(get_parser().parse_args(argv))


if __name__ == "__main__":
    cli_main()
