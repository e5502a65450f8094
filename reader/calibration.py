"""The no-answer probability: Platt scaling of the best span's margin over the null score,
p(no answer) = sigmoid(-(margin - shift) / temperature), fitted by log loss on validation questions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NoAnswerCalibration:
    temperature: float = 1.0
    shift: float = 0.0
    threshold: float = 0.5  # abstain when p(no answer) exceeds this

    def probability(self, margin: float) -> float:
        if margin == -math.inf:
            return 1.0
        z = (margin - self.shift) / self.temperature
        return 1.0 / (1.0 + math.exp(z)) if z > -700 else 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_calibration(margins: Sequence[float], unanswerable: Sequence[bool]) -> NoAnswerCalibration:
    """Temperature and shift minimising the log loss of p(no answer) against the labels (L-BFGS in torch).
    Needs both answerable and unanswerable questions."""
    import torch

    if len(set(unanswerable)) < 2:
        raise ValueError("calibration needs answerable and unanswerable questions")
    finite = [m if math.isfinite(m) else -50.0 for m in margins]
    x = torch.tensor(finite, dtype=torch.float64)
    y = torch.tensor([float(u) for u in unanswerable], dtype=torch.float64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    shift = torch.tensor(float(x.median()), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t, shift], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(-(x - shift) / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return NoAnswerCalibration(temperature=float(log_t.detach().exp()), shift=float(shift.detach()))
