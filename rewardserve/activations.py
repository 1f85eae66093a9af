"""Sigmoid and softmax, once for every stage: overflow-free on any float input. Torch-free.

Training's evaluation, export's parity gate and the server's post-processing all turn logits
into probabilities with these, so a probability means the same thing at every stage.

Example::

    softmax(np.array([[0.0, 1e4]]))   # array([[0., 1.]]), no overflow warning
    sigmoid(-1e4)                     # 0.0
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """The logistic function, elementwise (via tanh: cannot overflow, unlike 1 / (1 + exp(-x)))."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax over ``axis``, shifted by the maximum so large logits do not overflow."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of logit rows: softmax, or the sigmoid when a row has a single logit."""
    logits = np.asarray(logits, np.float64)
    return sigmoid(logits) if logits.shape[-1] == 1 else softmax(logits)
