"""tinymoe: a small but real Mixture-of-Experts language model with fairseq's structure.

It exists so that moe-run can be demonstrated and tested end to end on a machine without GPUs or a
15B checkpoint: the class and function names match fairseq's moe branch (TransformerDecoder,
TransformerDecoderLayer with ``is_moe_layer``, MultiheadAttention, MOELayer, SequenceScorer.generate,
eval_lm), so the same profiler hooks, region and step apply, and the MoE layers really exchange
tokens between ranks with two ``all_to_all_single`` collectives per forward, as fairseq's do.
"""
