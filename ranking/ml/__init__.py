"""The pure torch/numpy core of ranking: encoders, rankers, the whole-page reranker, its training
and metrics. No Django imports here: plain arrays and dataclasses in and out."""
