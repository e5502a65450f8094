"""The extractive span reader: SQuAD-format training data, windowed features, span decoding, calibrated
no-answer probabilities, training, and batched inference. Depends on transformers and torch only."""

from reader import threads as _threads  # noqa: F401 - before torch loads OpenMP
