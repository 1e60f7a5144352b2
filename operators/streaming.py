"""Streaming classification: a batch classifier retrained on a damped reservoir.

MacroBase's recipe: keep an adaptable damped reservoir (ADR) of recent events, train the
robust model on it, retrain every ``retrain_every`` events. With a percentile cut-off the
threshold is the percentile of the model's scores over that reservoir: a damped sample of
recent scores, so the cut-off follows the stream as it drifts.

The first model exists once ``warmup`` events were seen (default: the reservoir size);
until then :meth:`ready` is False and callers hold events (the pipeline classifies them
as soon as the model exists; none are dropped).

>>> import numpy as np
>>> from operators import MAD
>>> sc = StreamingClassifier(MAD(cutoff={"score": 3.0}), reservoir=1000, random_state=0)
>>> sc.learn(np.random.default_rng(0).normal(size=1000)).ready
True
>>> sc.predict(np.array([0.1, 25.0])).tolist()
[False, True]
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from operators.base import Classifier, OperatorError
from operators.domains import Interval
from operators.estimator import Estimator, InstanceOf, OrNone, RandomState
from operators.reservoir import DampedReservoir


class StreamingClassifier(Estimator):
    """Keeps ``classifier`` trained on recent events.

    Parameters
    ----------
    classifier : an unfitted classifier from :mod:`operators` (a template; copies are fit)
    reservoir : rows kept in the training reservoir
    decay : weight lost by older rows per :meth:`advance` (one emit interval)
    retrain_every : events between retrainings
    warmup : events before the first model (default ``reservoir``); predicates need none
    """

    def __init__(self, classifier: Classifier, reservoir: int = 10_000, decay: float = 0.01,
                 retrain_every: int = 100_000, warmup: int | None = None, random_state: Any = 0) -> None:
        self.classifier = classifier
        self.reservoir = reservoir
        self.decay = decay
        self.retrain_every = retrain_every
        self.warmup = warmup
        self.random_state = random_state
        self._check_params()

    _constraints = {
        "classifier": InstanceOf(Classifier, "an unfitted classifier from operators"),
        "reservoir": Interval(1, integer=True),
        "decay": Interval(0, 1, high_open=True),
        "retrain_every": Interval(1, integer=True),
        "warmup": OrNone(Interval(1, integer=True)),
        "random_state": RandomState(),
    }

    @property
    def ready(self) -> bool:
        """True once a model exists (predicates are always ready)."""
        return self.model is not None

    @property
    def model(self) -> Classifier | None:
        """The fitted model in use, or None before the first one (a predicate is never None)."""
        if getattr(self, "model_", None) is None and not self.classifier.requires_training:
            self.model_ = copy.deepcopy(self.classifier).fit(np.zeros(1))
        return getattr(self, "model_", None)

    def _start(self) -> None:
        if hasattr(self, "reservoir_"):
            return
        self._check_params()
        self.reservoir_ = DampedReservoir(self.reservoir, self.decay, self.random_state)
        self.model_ = getattr(self, "model_", None)
        self.seen_ = 0
        self.since_training_ = 0
        self.trainings_ = 0

    def resume(self, model: Classifier) -> "StreamingClassifier":
        """Continue with an already fitted ``model`` (e.g. from a checkpoint)."""
        self._start()
        self.model_ = model
        return self

    def train_now(self) -> "StreamingClassifier":
        """Train on whatever the reservoir holds (a bounded stream ended before the warm-up)."""
        if self.classifier.requires_training and hasattr(self, "reservoir_") and self.seen_:
            self._train()
        return self

    def learn(self, X: np.ndarray) -> "StreamingClassifier":
        """Add a batch of rows to the reservoir; (re)train when due."""
        X = np.asarray(X, dtype=np.float64)
        self._start()
        rows = X.reshape(len(X), -1)
        self.reservoir_.insert(rows)
        self.seen_ += len(X)
        self.since_training_ += len(X)
        warmup = self.reservoir if self.warmup is None else self.warmup
        due = self.since_training_ >= self.retrain_every if self.model_ is not None else self.seen_ >= warmup
        if due and self.classifier.requires_training:  # a predicate learns nothing
            self._train()
        return self

    def _train(self) -> None:
        sample = self.reservoir_.sample()
        model = copy.deepcopy(self.classifier)
        model.fit(sample[:, 0] if sample.shape[1] == 1 else sample)
        self.model_ = model
        self.since_training_ = 0
        self.trainings_ += 1

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outlier labels under the current model."""
        if not self.ready:
            raise OperatorError("StreamingClassifier: no model yet; call learn() until ready")
        return self.model.predict(X)

    def advance(self) -> None:
        """End of an emit interval: older reservoir rows lose weight."""
        if hasattr(self, "reservoir_"):
            self.reservoir_.advance()

    def thresholds(self, metric_names: list[str]) -> dict[str, dict[str, float]]:
        model = self.model
        return model.thresholds(metric_names) if model is not None else {}

    def sample(self) -> np.ndarray:
        """The training reservoir (recent rows), e.g. to draw the metric's distribution."""
        return self.reservoir_.sample() if hasattr(self, "reservoir_") else np.empty((0, 1))
