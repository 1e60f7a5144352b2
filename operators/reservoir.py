"""Adaptable damped reservoir (ADR): MacroBase's sample of *recent* data.

A weighted reservoir (Chao 1982) whose older items are down-weighted by (1 - decay) at
each period boundary (``advance()``), so after a distribution shift the sample drifts
to the new data at a rate set by ``decay``; decay = 0 is a plain uniform reservoir.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from operators import _reservoir as K
from operators.base import OperatorError
from operators.domains import Interval
from operators.estimator import Estimator, RandomState


class DampedReservoir(Estimator):
    """Fixed-size weighted sample of a stream of row batches.

    Parameters
    ----------
    capacity : int >= 1
        Number of rows kept.
    decay : float in [0, 1)
        Fraction of weight previously inserted items lose at each ``advance()``.
    random_state : int, numpy Generator or None

    Example
    -------
    >>> import numpy as np
    >>> from operators import DampedReservoir
    >>> r = DampedReservoir(capacity=100, decay=0.2, random_state=0)
    >>> r.insert(np.zeros((1000, 2))); r.advance(); r.insert(np.ones((1000, 2)))
    >>> r.sample().shape
    (100, 2)
    """

    _constraints = {"capacity": Interval(1, integer=True), "decay": Interval(0, 1, high_open=True),
                    "random_state": RandomState()}

    def __init__(self, capacity: int, decay: float = 0.0, random_state: Any = None) -> None:
        self.capacity = capacity
        self.decay = decay
        self.random_state = random_state
        self._check_params()
        self._rng = (
            random_state
            if isinstance(random_state, np.random.Generator)
            else np.random.default_rng(random_state)
        )
        self._rows: np.ndarray | None = None
        self._size = 0
        self._weight = 0.0

    def __len__(self) -> int:
        return self._size

    @property
    def total_weight(self) -> float:
        """Decayed number of items seen (the W of Chao's algorithm)."""
        return self._weight

    def insert(self, batch: Any) -> None:
        """Offer every row of a (rows x d) batch (a 1-D batch is one column)."""
        arr = np.asarray(batch, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise OperatorError(f"DampedReservoir: batch must be 1-D or 2-D; got shape {arr.shape}")
        if arr.shape[0] == 0:
            return
        if self._rows is None:
            self._rows = np.empty((self.capacity, arr.shape[1]), dtype=np.float64)
        elif arr.shape[1] != self._rows.shape[1]:
            raise OperatorError(
                f"DampedReservoir: batch has {arr.shape[1]} columns; the reservoir holds {self._rows.shape[1]}"
            )
        m = arr.shape[0]
        u = self._rng.random(m)
        slots = self._rng.integers(0, self.capacity, size=m)
        self._size, self._weight = K.reservoir_insert(
            self._rows, self._size, self._weight, np.ascontiguousarray(arr), u, slots
        )

    def advance(self) -> None:
        """End a period: every item inserted so far loses a `decay` fraction of its weight."""
        self._weight *= 1.0 - self.decay

    def sample(self) -> np.ndarray:
        """A copy of the current rows, shape (min(capacity, seen), d)."""
        if self._rows is None:
            return np.empty((0, 0), dtype=np.float64)
        return self._rows[: self._size].copy()
