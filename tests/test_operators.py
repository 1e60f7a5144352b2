"""Contract, validation and accuracy tests for the univariate classifiers (and the
generic contract for MCD). References are independent: NumPy, SciPy, the operator
module, or planted ground truth."""

from __future__ import annotations

import inspect
import operator as pyop

import numpy as np
import pytest
import scipy.stats

from operators import (
    CLASSIFIERS,
    MAD,
    MCD,
    NotFittedError,
    OperatorError,
    Percentile,
    Predicate,
    ZScore,
    make_classifier,
)

RNG = np.random.default_rng(12345)
UNI = RNG.standard_t(df=5, size=2000) * 3.0 + 10.0
MULTI = RNG.multivariate_normal([0, 1, 2], [[2, 0.5, 0], [0.5, 1, 0.3], [0, 0.3, 1.5]], size=2000)

# (class, explicit keyword arguments) -- every parameter passed explicitly so the test
# can check __init__ stores each one unchanged.
CASES = [
    (MAD, {"cutoff": {"score": 3.0}, "tail": "high"}),
    (MAD, {"cutoff": {"percentile": 95}, "tail": "both"}),
    (MAD, {"cutoff": None, "tail": "low"}),
    (ZScore, {"cutoff": {"score": 2.5}, "tail": "both"}),
    (ZScore, {"cutoff": {"percentile": 90.0}, "tail": "low"}),
    (Percentile, {"percentile": 95.0, "tail": "both"}),
    (Percentile, {"percentile": 99, "tail": "high"}),
    (Predicate, {"op": ">=", "value": 12.0}),
    (
        MCD,
        {
            "cutoff": {"percentile": 97.5},
            "tail": "high",
            "support_fraction": None,
            "n_starts": 100,
            "random_state": 7,
            "max_iter": 50,
        },
    ),
]
IDS = [f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)]


def _data(cls):
    return MULTI if cls is MCD else UNI


def _state(est):
    return {k: v for k, v in vars(est).items()}


# ----------------------------------------------------------------------- generic contract


@pytest.mark.parametrize("cls,params", CASES, ids=IDS)
class TestContract:
    def test_init_stores_only_params(self, cls, params):
        est = cls(**params)
        names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        assert set(params) == set(names), "test must pass every parameter"
        assert set(vars(est)) == set(names)
        for k, v in params.items():
            assert getattr(est, k) is v
        assert est.get_params() == params

    def test_unfitted_errors(self, cls, params):
        est = cls(**params)
        X = _data(cls)
        for call in (lambda: est.predict(X), lambda: est.score(X), lambda: est.thresholds(["a"])):
            with pytest.raises(NotFittedError, match="fit"):
                call()
        assert issubclass(NotFittedError, ValueError)

    def test_fit_returns_self_and_learned_attrs(self, cls, params):
        est = cls(**params)
        before = set(vars(est))
        assert not any(k.endswith("_") for k in before)
        assert est.fit(_data(cls)) is est
        learned = set(vars(est)) - before
        assert learned, "fit must learn something"
        assert all(k.endswith("_") for k in learned), learned
        # parameters are untouched by fit
        for k, v in params.items():
            assert getattr(est, k) is v

    def test_score_predict_shapes(self, cls, params):
        X = _data(cls)
        est = cls(**params).fit(X)
        s = est.score(X)
        y = est.predict(X)
        assert s.shape == (len(X),) and s.dtype == np.float64
        assert y.shape == (len(X),) and y.dtype == np.bool_
        assert np.isfinite(s).all()
        np.testing.assert_array_equal(cls(**params).fit_predict(X), y)
        # scoring a slice gives the same per-row answers (no dependence on batch)
        np.testing.assert_array_equal(est.predict(X[:37]), y[:37])
        np.testing.assert_allclose(est.score(X[:37]), s[:37], rtol=0, atol=0)

    def test_deterministic(self, cls, params):
        X = _data(cls)
        a = cls(**params).fit(X)
        b = cls(**a.get_params()).fit(X)
        np.testing.assert_array_equal(a.score(X), b.score(X))
        np.testing.assert_array_equal(a.predict(X), b.predict(X))

    def test_thresholds_shape(self, cls, params):
        X = _data(cls)
        est = cls(**params).fit(X)
        names = ["a", "b", "c"][: X.shape[1]] if X.ndim == 2 else ["power_drain"]
        th = est.thresholds(names)
        assert isinstance(th, dict) and len(th) == 1
        ((key, bounds),) = th.items()
        assert key == ("mahalanobis_distance" if cls is MCD else names[0])
        assert all(isinstance(v, float) and np.isfinite(v) for v in bounds.values())

    def test_empty_and_nan_inputs(self, cls, params):
        empty = np.empty((0, 3)) if cls is MCD else np.array([])
        with pytest.raises(ValueError, match="empty"):
            cls(**params).fit(empty)
        bad = _data(cls).copy()
        bad[5] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            cls(**params).fit(bad)
        est = cls(**params).fit(_data(cls))
        with pytest.raises(ValueError, match="NaN"):
            est.predict(bad)


def test_registry_covers_every_classifier():
    assert set(CLASSIFIERS) == {"mad", "mcd", "zscore", "percentile", "predicate"}
    assert isinstance(make_classifier("percentile", percentile=90), Percentile)
    with pytest.raises(ValueError, match="classifier"):
        make_classifier("isolation_forest")
    with pytest.raises(ValueError, match="mad"):
        make_classifier("mad", bogus=1)


# ----------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: MAD(tail="upper"), "tail"),
        (lambda: ZScore(tail=None), "tail"),
        (lambda: Percentile(tail="sideways"), "tail"),
        (lambda: MCD(tail="left"), "tail"),
        (lambda: Percentile(percentile=0), "percentile"),
        (lambda: Percentile(percentile=100), "percentile"),
        (lambda: Percentile(percentile=-3), "percentile"),
        (lambda: Percentile(percentile="99"), "percentile"),
        (lambda: MAD(cutoff={"percentile": 100}), "percentile"),
        (lambda: MAD(cutoff={"percentile": 0.0}), "percentile"),
        (lambda: MAD(cutoff={"zscore": 3}), "cutoff"),
        (lambda: MAD(cutoff={"score": 3, "percentile": 99}), "cutoff"),
        (lambda: ZScore(cutoff=3.0), "cutoff"),
        (lambda: ZScore(cutoff={"score": -1}), "score"),
        (lambda: MCD(cutoff={"pct": 99}), "cutoff"),
        (lambda: MCD(support_fraction=1.5), "support_fraction"),
        (lambda: MCD(n_starts=0), "n_starts"),
        (lambda: Predicate(op="=>", value=1), "op"),
        (lambda: Predicate(op=">", value="x"), "value"),
    ],
)
def test_bad_parameters_raise_valueerror(factory, match):
    with pytest.raises(ValueError, match=match) as info:
        factory()
    msg = str(info.value)
    assert "\n" not in msg
    assert isinstance(info.value, OperatorError)


def test_set_params_is_revalidated_at_fit():
    est = MAD()
    est.tail = "sideways"  # bypasses __init__
    with pytest.raises(ValueError, match="tail"):
        est.fit(UNI)


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match="1-D"):
        MAD().fit(MULTI)
    assert MAD().fit(UNI[:, None]).score(UNI[:, None]).shape == UNI.shape
    with pytest.raises(ValueError, match="features"):
        MCD(random_state=0).fit(MULTI).score(MULTI[:, :2])


# ----------------------------------------------------------------------- references


def test_mad_matches_scipy_reference():
    x = UNI
    med = np.median(x)
    ref_scale = scipy.stats.median_abs_deviation(x, scale="normal")
    est = MAD().fit(x)
    assert est.median_ == pytest.approx(med, rel=0, abs=0)
    assert est.mad_ == pytest.approx(scipy.stats.median_abs_deviation(x), rel=1e-12)
    # 1.4826 vs SciPy's exact 1/Phi^-1(3/4) = 1.482602...: agree to 2e-6 relative
    assert est.scale_ == pytest.approx(ref_scale, rel=2e-6)
    np.testing.assert_allclose(est.score(x), np.abs(x - med) / ref_scale, rtol=2e-6)


def test_zscore_matches_scipy_reference():
    x = UNI
    est = ZScore().fit(x)
    np.testing.assert_allclose(est.score(x), np.abs(scipy.stats.zscore(x)), rtol=1e-10, atol=1e-12)
    assert est.mean_ == pytest.approx(x.mean(), rel=1e-12)
    assert est.std_ == pytest.approx(x.std(), rel=1e-12)


@pytest.mark.parametrize("p", [50, 90, 97.5, 99.9])
@pytest.mark.parametrize("tail", ["high", "low", "both"])
def test_percentile_matches_numpy(p, tail):
    x = UNI
    hi, lo = np.percentile(x, p), np.percentile(x, 100 - p)
    expected = {"high": x >= hi, "low": x <= lo, "both": (x >= hi) | (x <= lo)}[tail]
    est = Percentile(percentile=p, tail=tail).fit(x)
    np.testing.assert_array_equal(est.predict(x), expected)
    th = est.thresholds(["m"])["m"]
    if tail in ("high", "both"):
        assert th["high"] == hi
    if tail in ("low", "both"):
        assert th["low"] == lo


def _signed_reference(x, center, scale):
    return (x - center) / scale


@pytest.mark.parametrize("cls", [MAD, ZScore])
@pytest.mark.parametrize("tail", ["high", "low", "both"])
def test_tail_rules_against_reference(cls, tail):
    x = UNI
    if cls is MAD:
        c, sc = np.median(x), 1.4826 * scipy.stats.median_abs_deviation(x)
    else:
        c, sc = x.mean(), x.std()
    s = _signed_reference(x, c, sc)
    # score cut-off
    z = 2.0
    exp = {"high": s >= z, "low": s <= -z, "both": np.abs(s) >= z}[tail]
    got = cls(cutoff={"score": z}, tail=tail).fit(x).predict(x)
    assert (got != exp).sum() <= 1  # a value can sit on the boundary up to rounding
    # percentile cut-off
    p = 93.0
    exp = {
        "high": s >= np.percentile(s, p),
        "low": s <= np.percentile(s, 100 - p),
        "both": np.abs(s) >= np.percentile(np.abs(s), p),
    }[tail]
    got = cls(cutoff={"percentile": p}, tail=tail).fit(x).predict(x)
    assert (got != exp).sum() <= 1


@pytest.mark.parametrize("cls", [MAD, ZScore])
@pytest.mark.parametrize("p", [90.0, 95.0, 99.0])
@pytest.mark.parametrize("tail", ["high", "low", "both"])
def test_percentile_cutoff_coincides_with_percentile_classifier(cls, p, tail):
    # high/low: the signed score is an increasing affine map of x, so the p-th
    # percentile cut-off on it selects exactly the Percentile classifier's set.
    x = RNG.normal(size=3001)
    if tail == "both":
        # symmetric about the centre, |s| ranks like |x - c|: compare with the
        # percentile of |x - c| (not the Percentile classifier, which cuts each tail)
        est = cls(cutoff={"percentile": p}, tail="both").fit(x)
        c = est.median_ if cls is MAD else est.mean_
        dev = np.abs(x - c)
        np.testing.assert_array_equal(est.predict(x), dev >= np.percentile(dev, p))
        return
    a = cls(cutoff={"percentile": p}, tail=tail).fit(x).predict(x)
    b = Percentile(percentile=p, tail=tail).fit(x).predict(x)
    np.testing.assert_array_equal(a, b)
    ta = cls(cutoff={"percentile": p}, tail=tail).fit(x).thresholds(["m"])["m"][tail]
    tb = Percentile(percentile=p, tail=tail).fit(x).thresholds(["m"])["m"][tail]
    assert ta == pytest.approx(tb, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("tail", ["high", "low", "both"])
def test_thresholds_are_in_metric_units(tail):
    x = UNI
    est = MAD(cutoff={"score": 3.0}, tail=tail).fit(x)
    th = est.thresholds(["power_drain"])["power_drain"]
    med, sc = np.median(x), 1.4826 * scipy.stats.median_abs_deviation(x)
    if tail in ("high", "both"):
        assert th["high"] == pytest.approx(med + 3.0 * sc, rel=1e-12)
    if tail in ("low", "both"):
        assert th["low"] == pytest.approx(med - 3.0 * sc, rel=1e-12)
    assert set(th) == ({"high", "low"} if tail == "both" else {tail})
    # predicting from the bounds reproduces predict() away from the boundary
    grid = np.linspace(x.min() - 10, x.max() + 10, 5001)
    y = est.predict(grid)
    exp = np.zeros_like(y)
    if "high" in th:
        exp |= grid >= th["high"]
    if "low" in th:
        exp |= grid <= th["low"]
    assert (y != exp).sum() <= 1


def test_predicate_all_ops_against_operator_module():
    x = np.array([0.1, 0.8, 0.8000001, 0.9, -3.0, 0.8])
    ops = {">": pyop.gt, ">=": pyop.ge, "<": pyop.lt, "<=": pyop.le, "==": pyop.eq, "!=": pyop.ne}
    for sym, fn in ops.items():
        est = Predicate(op=sym, value=0.8).fit(x)
        np.testing.assert_array_equal(est.predict(x), fn(x, 0.8))
        np.testing.assert_array_equal(est.score(x), fn(x, 0.8).astype(float))
        assert est.thresholds(["x"]) == {"x": {sym: 0.8}}


# ----------------------------------------------------------------------- degenerate scales


def test_mad_zero_falls_back_to_mean_absolute_deviation():
    x = np.r_[np.full(60, 5.0), np.linspace(0, 10, 40)]
    est = MAD(cutoff={"score": 3.5}).fit(x)
    assert est.mad_ == 0.0
    assert est.scale_ == pytest.approx(1.253314 * np.mean(np.abs(x - 5.0)))
    s = est.score(x)
    assert np.isfinite(s).all() and not np.isnan(s).any()


@pytest.mark.parametrize("cls", [MAD, ZScore])
@pytest.mark.parametrize("cutoff", [{"score": 3.0}, {"percentile": 99.0}])
def test_constant_input_never_nan(cls, cutoff):
    x = np.full(100, 7.0)
    with np.errstate(all="raise"):  # no division by zero anywhere
        est = cls(cutoff=cutoff, tail="both").fit(x)
        s = est.score(np.array([7.0, 7.5, 6.0]))
    np.testing.assert_array_equal(s, [0.0, np.inf, np.inf])
    assert est.scale_ == 0.0
    y = est.predict(np.array([7.5, 6.0]))
    assert y.all()
    th = est.thresholds(["m"])["m"]
    assert th == {"low": 7.0, "high": 7.0}


# ----------------------------------------------------------------------- quality floors


@pytest.mark.parametrize("cls,tail", [(MAD, "both"), (ZScore, "both"), (MAD, "high")])
def test_planted_outliers_are_found(cls, tail):
    rng = np.random.default_rng(3)
    n, k = 20_000, 200
    x = rng.normal(100.0, 5.0, size=n)
    planted = rng.choice(n, size=k, replace=False)
    sign = 1.0 if tail == "high" else rng.choice([-1.0, 1.0], size=k)
    x[planted] = 100.0 + sign * rng.uniform(30.0, 60.0, size=k)  # 6-12 sigma
    truth = np.zeros(n, dtype=bool)
    truth[planted] = True
    y = cls(cutoff={"score": 4.0}, tail=tail).fit_predict(x)
    recall = (y & truth).sum() / k
    false_pos = (y & ~truth).sum() / (n - k)
    assert recall >= 0.99
    assert false_pos <= 0.001


def test_mad_is_robust_where_zscore_is_not():
    # 20% gross contamination inflates the std so much that z-scores miss the planted
    # points; MAD keeps finding them.
    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(0, 1, 8000), rng.normal(50, 1, 2000)]
    truth = np.r_[np.zeros(8000, bool), np.ones(2000, bool)]
    mad_recall = (MAD(cutoff={"score": 3.5}).fit_predict(x) & truth).mean() / truth.mean()
    z_recall = (ZScore(cutoff={"score": 3.5}).fit_predict(x) & truth).mean() / truth.mean()
    assert mad_recall == 1.0
    assert z_recall < 0.1
