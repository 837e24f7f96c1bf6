"""Scores one batch: the log-probability of every target token (fairseq's SequenceScorer)."""
import math

import torch


class SequenceScorer:
    def __init__(self, softmax_batch=None):
        self.softmax_batch = softmax_batch

    @torch.no_grad()
    def generate(self, models, sample):
        """One hypothesis per sentence: {"tokens", "score", "positional_scores"} (natural log),
        averaged over the models of the ensemble, as fairseq's SequenceScorer.generate returns."""
        target = sample["target"]
        per_model = []
        for model in models:
            logits, _ = model(**sample["net_input"])
            lprobs = torch.log_softmax(logits.float(), dim=-1)
            per_model.append(lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1))
        # an ensemble averages probabilities, not log-probabilities
        avg_lprobs = torch.logsumexp(torch.stack(per_model), dim=0) - math.log(len(models))
        return [
            [{"tokens": target[i], "score": avg_lprobs[i].mean(), "positional_scores": avg_lprobs[i]}]
            for i in range(target.shape[0])
        ]
