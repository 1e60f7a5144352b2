"""StreamingClassifier: warm-up, retraining on the damped reservoir, drift."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from operators import MAD, MCD, Percentile, Predicate
from operators.streaming import StreamingClassifier


def test_not_ready_before_warmup_then_close_to_batch_model():
    rng = np.random.default_rng(0)
    x = rng.normal(50, 5, 50_000)
    sc = StreamingClassifier(MAD(cutoff={"score": 3.0}), reservoir=5000, random_state=1)
    sc.learn(x[:4000])
    assert not sc.ready
    sc.learn(x[4000:])
    assert sc.ready
    # Trained on a uniform sample of the stream: median and MAD close to the full data's.
    assert sc.model_.median_ == pytest.approx(np.median(x), abs=0.3)
    assert sc.model_.scale_ == pytest.approx(stats.median_abs_deviation(x, scale="normal"), rel=0.05)


def test_retrains_every_n_events_and_follows_drift():
    rng = np.random.default_rng(1)
    sc = StreamingClassifier(Percentile(percentile=99), reservoir=2000, decay=0.5,
                             retrain_every=10_000, random_state=0)
    for _ in range(5):
        sc.learn(rng.normal(0, 1, 5000))
        sc.advance()
    low_threshold = sc.thresholds(["x"])["x"]["high"]
    assert low_threshold == pytest.approx(stats.norm.ppf(0.99), abs=0.3)
    for _ in range(10):  # the stream shifts by +10
        sc.learn(rng.normal(10, 1, 5000))
        sc.advance()
    assert sc.trainings_ >= 6
    assert sc.thresholds(["x"])["x"]["high"] == pytest.approx(10 + stats.norm.ppf(0.99), abs=0.5)


def test_predicate_needs_no_training():
    sc = StreamingClassifier(Predicate(op=">=", value=3.0))
    sc.learn(np.array([1.0]))
    assert sc.ready and sc.predict(np.array([2.0, 3.0])).tolist() == [False, True]


def test_multivariate_mcd_streams():
    rng = np.random.default_rng(2)
    X = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], 20_000)
    sc = StreamingClassifier(MCD(cutoff={"score": 4.0}, random_state=0), reservoir=3000).learn(X)
    assert sc.ready
    assert sc.predict(np.array([[0.0, 0.0], [3.0, -3.0]])).tolist() == [False, True]


def test_predict_before_ready_is_a_clear_error():
    with pytest.raises(ValueError, match="no model yet"):
        StreamingClassifier(MAD()).predict(np.zeros(3))
