"""One estimator contract, checked over every estimator the libraries export.

Every class in ``operators.__all__`` and ``explain.__all__`` that is an
:class:`operators.Estimator` must have an example below (a new estimator fails
``test_every_estimator_has_an_example`` until it gets one), and each is checked for:
parameters by introspection, clone and ``repr``, ``set_params``, one
:class:`~operators.ParameterError` per constrained parameter (at construction, naming it),
pickling and state round trip, seeded determinism, and a runnable example in its docs.
"""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pytest

import explain
import operators
from explain import AmcSketch, BatchExplainer, StreamingExplainer, encode_columns
from operators import (MAD, MCD, DampedReservoir, Estimator, ParameterError, Percentile, Predicate,
                       StreamingClassifier, ZScore)
from operators.domains import Interval

RNG = np.random.default_rng(7)
X1 = np.r_[RNG.normal(size=400), RNG.normal(8.0, 1.0, size=8)]
X2 = np.c_[X1, RNG.normal(size=len(X1))]
CODES = [RNG.integers(0, 5, len(X1)).astype(np.int32), RNG.integers(0, 3, len(X1)).astype(np.int32)]
CODES[0][-8:] = 4  # the outliers share a=4
FLAGS = np.r_[np.zeros(400, bool), np.ones(8, bool)]


def _classify(est, x):
    return est.fit(x).predict(x).tolist(), est.thresholds(["m"] if x.ndim == 1 else ["m", "k"])


def _reservoir(est):
    est.insert(X2[:200])
    est.advance()
    est.insert(X2[200:])
    return est.sample().tolist()


def _streaming_classifier(est):
    est.learn(X1[:300]).learn(X1[300:])
    return est.predict(X1).tolist()


def _sketch(est):
    est.add(np.arange(40, dtype=np.int64), np.arange(40.0), np.arange(40.0) + 1)
    est.prune()
    return sorted(zip(est.keys.tolist(), est.o.tolist(), est.n.tolist()))


def _batch(est):
    enc = encode_columns({"a": [str(c) for c in CODES[0]], "b": [str(c) for c in CODES[1]]})
    return [(e.attributes, e.outlier_count, e.count) for e in est.explain(enc, FLAGS)]


def _streaming_explainer(est):
    est.update(CODES, FLAGS)
    return [(e.attributes, e.outlier_count, e.count) for e in est.explanations()]


#: class -> (a valid instance, what it computes on fixed data)
EXAMPLES = {
    MAD: (lambda: MAD(cutoff={"score": 3.0}), lambda e: _classify(e, X1)),
    ZScore: (lambda: ZScore(tail="both"), lambda e: _classify(e, X1)),
    Percentile: (lambda: Percentile(percentile=98.0), lambda e: _classify(e, X1)),
    Predicate: (lambda: Predicate(">=", 5.0), lambda e: _classify(e, X1)),
    MCD: (lambda: MCD(n_starts=20, random_state=3), lambda e: _classify(e, X2)),
    DampedReservoir: (lambda: DampedReservoir(50, decay=0.2, random_state=1), _reservoir),
    StreamingClassifier: (lambda: StreamingClassifier(MAD(), reservoir=100, retrain_every=50, random_state=2),
                          _streaming_classifier),
    AmcSketch: (lambda: AmcSketch(budget=10), _sketch),
    BatchExplainer: (lambda: BatchExplainer(min_support=0.5, min_ratio=2.0), _batch),
    StreamingExplainer: (lambda: StreamingExplainer(["a", "b"], min_support=0.5, min_ratio=2.0),
                         _streaming_explainer),
}


def _exported_estimators() -> set[type]:
    found = set()
    for module in (operators, explain):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, Estimator) and obj is not Estimator \
                    and not inspect.isabstract(obj) and obj is not operators.Classifier:
                found.add(obj)
    return found


def test_every_estimator_has_an_example():
    assert _exported_estimators() == set(EXAMPLES)


CASES = pytest.mark.parametrize("cls", sorted(EXAMPLES, key=lambda c: c.__name__), ids=lambda c: c.__name__)


@CASES
def test_parameters_clone_and_repr(cls):
    est = EXAMPLES[cls][0]()
    params = est.get_params()
    assert list(params) == [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    clone = cls(**params)
    assert repr(clone) == repr(est)
    assert repr(est).startswith(f"{cls.__name__}(") and all(f"{k}=" in repr(est) for k in params)
    assert est.set_params(**params) is est
    with pytest.raises(ParameterError) as info:
        est.set_params(no_such_parameter=1)
    assert info.value.parameter == "no_such_parameter"


def _bad_values(constraint) -> list:
    bad = ["<not a valid value>"]
    inner = getattr(constraint, "inner", constraint)
    if isinstance(inner, Interval):
        if inner.low is not None:
            bad.append(inner.low - 1)
        if inner.high is not None:
            bad.append(inner.high + 1)
        if inner.integer:
            bad.append(2.5)
    return bad


@CASES
def test_each_constrained_parameter_is_checked_at_construction_and_named(cls):
    make = EXAMPLES[cls][0]
    params = make().get_params()
    assert cls._constraints or cls.__mro__[1] is not Estimator, f"{cls.__name__} declares no constraints"
    for name, constraint in cls._constraints.items():
        for value in _bad_values(constraint):
            with pytest.raises(ParameterError) as info:
                cls(**{**params, name: value})
            assert info.value.parameter == name, (name, value)
            assert "\n" not in str(info.value) and name in str(info.value)
            est = make()
            with pytest.raises(ParameterError):
                est.set_params(**{name: value})


@CASES
def test_pickled_state_computes_the_same(cls):
    make, run = EXAMPLES[cls]
    est = make()
    first = run(est)
    copy = pickle.loads(pickle.dumps(est))
    assert repr(copy) == repr(est)
    if cls is StreamingExplainer:  # its own checkpoint format too
        restored = StreamingExplainer.from_state(est.to_state())
        assert restored.frequent_counts() == est.frequent_counts()
    # the same next step from the original and from the copy
    assert run(copy) == run(est)
    assert first is not None


@CASES
def test_seeded_runs_are_identical(cls):
    make, run = EXAMPLES[cls]
    assert run(make()) == run(make())


@CASES
def test_docs_carry_a_runnable_example(cls):
    module = inspect.getmodule(cls)
    assert ">>>" in (cls.__doc__ or "") or ">>>" in (module.__doc__ or ""), cls.__name__


def test_predicates_need_no_training():
    assert not Predicate.requires_training
    assert all(c.requires_training for c in (MAD, MCD, Percentile, ZScore))
    sc = StreamingClassifier(Predicate(">", 1.0))
    assert sc.ready and sc.predict(np.array([0.0, 2.0])).tolist() == [False, True]
