"""p-values against SciPy, intervals against SciPy and by coverage, and max_p_value on
planted data: planted causes survive Benjamini–Hochberg at 0.01, noise does not.

The product computes the hypergeometric tail itself (explain.significance does not import
scipy.stats); SciPy is the reference here. Results below the smallest normal double
(~2.2e-308) carry few significant digits, SciPy's as well as ours: they are compared with
``atol=TINY``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact, hypergeom
from scipy.stats.contingency import odds_ratio, relative_risk

from explain import BatchExplainer, StreamingExplainer
from explain.significance import bh_adjusted, fisher_greater, hypergeom_cdf, ratio_ci
from macrobase.columns import encode_arrow
from macrobase.synthetic import planted_table

ATTRS = ["region", "firmware", "device_model", "carrier", "app_version", "device_id"]


def random_tables(rng, k, max_n=5000):
    N = rng.integers(2, max_n, k)
    O = rng.integers(1, N)
    n = rng.integers(1, N)
    lo, hi = np.maximum(0, O - (N - n)), np.minimum(n, O)
    o = lo + (rng.random(k) * (hi - lo + 1)).astype(np.int64)
    return o, n, O, N


def scipy_p(o, n, O, N):
    return fisher_exact([[o, n - o], [O - o, (N - n) - (O - o)]], alternative="greater").pvalue


def test_p_values_equal_scipy_fisher_exact():
    rng = np.random.default_rng(0)
    o, n, O, N = random_tables(rng, 3000)
    # Also big tables with tiny tails, and the edges: S empty or everything, no outliers.
    o2 = np.array([900, 5000, 0, 3, 0, 10, 1])
    n2 = np.array([1000, 60_000, 10, 10, 10, 10, 1])
    O2 = np.array([10_000, 20_000, 5, 3, 0, 10, 1])
    N2 = np.array([1_000_000, 2_000_000, 100, 10, 100, 10, 1])
    o, n, O, N = (np.concatenate(p) for p in ((o, o2), (n, n2), (O, O2), (N, N2)))
    got = fisher_greater(o, n, O, N)
    want = np.array([scipy_p(*t) for t in zip(o.tolist(), n.tolist(), O.tolist(), N.tolist())])
    assert (want[:-7] < 1e-12).any() and (want > 0.5).any()   # both tails exercised
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=TINY)


#: Below this a double is subnormal: fewer than 16 significant digits are left.
TINY = float(np.finfo(np.float64).tiny)


@st.composite
def tables(draw, max_n):
    """(o, n, O, N): a consistent 2x2 table with 0 < n < N and 0 < O < N."""
    N = draw(st.integers(2, max_n))
    O = draw(st.integers(1, N - 1))
    n = draw(st.integers(1, N - 1))
    lo, hi = max(0, O - (N - n)), min(n, O)
    o = draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi]),
                       st.integers(max(lo, round(n * O / N) - 3), min(hi, round(n * O / N) + 3))))
    return o, n, O, N


@settings(max_examples=300, deadline=None)
@given(st.lists(tables(10**6), min_size=1, max_size=40))
def test_fisher_greater_equals_scipy_on_generated_tables(batch):
    o, n, O, N = (np.array(c) for c in zip(*batch))
    want = np.array([scipy_p(*t) for t in batch])
    # SciPy's own error in far tails at a million rows is ~1e-10 (checked against mpmath).
    np.testing.assert_allclose(fisher_greater(o, n, O, N), want, rtol=1e-8, atol=TINY)


@settings(max_examples=200, deadline=None)
@given(tables(10**8), st.integers(-2, 2))
def test_hypergeom_cdf_equals_scipy_at_a_hundred_million_rows(table, shift):
    o, n, O, N = table
    x = np.clip(n - o + shift, -1, n + 1)  # also just outside the support
    got = hypergeom_cdf(x, n, N - n, N - O)[0]
    want = hypergeom.cdf(x, N, n, N - O)
    # SciPy (Boost's hypergeometric) is good to ~2e-8 relative at N ~ 1e8, not better: see
    # test_hypergeom_cdf_against_high_precision_values for the digits we keep there.
    assert got == pytest.approx(want, rel=1e-6, abs=TINY)


@pytest.mark.parametrize("table, want", [
    # (o, n, O, N) -> P, computed with mpmath at 40 digits (exact sums of exact densities).
    ((32_343_631, 36_690_075, 57_649_800, 65_403_413), 0.0070399084720831384716),
    ((39_131_216, 39_144_877, 95_895_689, 95_936_056), 2.892909200265425792e-182),
    ((66_924_219, 67_310_836, 72_142_354, 72_563_539), 4.4562236910255482827e-126),
    ((25_000_000, 50_000_000, 50_000_000, 100_000_000), 0.50007978845548187312),
    ((24_995_000, 50_000_000, 50_000_000, 100_000_000), 0.97726066435564654431),
    ((438_045, 464_850, 928_935, 995_144), 2.7063200164488196853e-244),
    ((68_744, 409_274, 147_395, 961_688), 1.0314510500261917439e-258),
    ((1_339, 2_164, 1_852, 3_800), 5.8029979521750181851e-79),
])
def test_hypergeom_cdf_against_high_precision_values(table, want):
    # At these sizes SciPy differs from the true value by up to 2e-8 (first three rows).
    o, n, O, N = table
    assert fisher_greater(o, n, O, N)[0] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("N", [10_000, 1_000_000, 100_000_000])
def test_extreme_tails_down_to_1e_300(N):
    # The outliers crowd into S: for each size, tables whose p-value spans ~1e-10..1e-305.
    O = n = N // 100 if N > 10_000 else 2_000
    mean = n * O / N
    sd = math.sqrt(mean * (1 - O / N) * (N - n) / (N - 1))
    o = np.unique(np.linspace(mean + 5 * sd, min(n, mean + 60 * sd), 400).round().astype(np.int64))
    want = hypergeom.cdf(n - o, N, n, N - O)
    keep = (want > 1e-305) & (want < 1e-10)
    assert keep.sum() > 20 and want[keep].min() < 1e-290
    got = fisher_greater(o[keep], n, O, N)
    rtol = 1e-9 if N <= 1_000_000 else 1e-6  # SciPy's accuracy at 1e8 rows, see above
    np.testing.assert_allclose(got, want[keep], rtol=rtol, atol=0)


def test_p_values_near_one_and_at_the_edges():
    # o below its expectation: p close to 1, from the complement of the small tail.
    o, n, O, N = np.array([0, 1, 5, 400]), np.array([1_000, 1_000, 1_000, 50_000]), 1_000, 100_000
    want = np.array([scipy_p(int(a), int(b), O, N) for a, b in zip(o, n)])
    np.testing.assert_allclose(fisher_greater(o, n, O, N), want, rtol=1e-12)
    # Scalars broadcast; every row an outlier, or S every row: p = 1 as in SciPy.
    assert fisher_greater(5, 10, 20, 20)[0] == 1.0 and fisher_greater(5, 20, 10, 20)[0] == 1.0
    assert hypergeom_cdf([-1, 0, 3, 4], 3, 7, 3).tolist() == [0.0, pytest.approx(7 / 24, rel=1e-14), 1.0, 1.0]


def test_decayed_counts_are_rounded_to_a_table():
    got = fisher_greater(2.6, 9.8, 4.4, 99.6)
    assert got[0] == pytest.approx(scipy_p(3, 10, 4, 100), rel=1e-12)
    # Rounding may not leave o > n or o > O: the table is clipped to a valid one.
    assert fisher_greater(5.4, 4.6, 5.0, 20.0)[0] == pytest.approx(scipy_p(5, 5, 5, 20), rel=1e-12)


def test_risk_ratio_interval_is_scipys_katz_interval():
    rng = np.random.default_rng(1)
    o, n, O, N = random_tables(rng, 300)
    ok = np.minimum(np.minimum(o, n - o), np.minimum(O - o, N - n - O + o)) > 0  # no zero cell
    o, n, O, N = o[ok], n[ok], O[ok], N[ok]
    lo, hi = ratio_ci("risk_ratio", o, n, O, N)
    for i in range(len(o)):
        ci = relative_risk(int(o[i]), int(n[i]), int(O[i] - o[i]), int(N[i] - n[i])).confidence_interval(0.95)
        assert (lo[i], hi[i]) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_prevalence_interval_of_a_group_vs_its_complement_is_woolfs():
    # The prevalence ratio compares S's odds with all rows' odds; when S's complement
    # is compared instead it is the odds ratio, whose log interval is Woolf's.
    a, b, c, d = 30, 70, 40, 860
    ci = odds_ratio([[a, b], [c, d]], kind="sample").confidence_interval(0.95)
    # Woolf's variance 1/a+1/b+1/c+1/d is ours with O, N-O taken as c, d.
    var = 1 / a + 1 / b + 1 / c + 1 / d
    want = np.exp(np.log(a * d / (b * c)) + np.array([-1, 1]) * 1.959963984540054 * math.sqrt(var))
    assert (ci.low, ci.high) == pytest.approx(tuple(want), rel=1e-9)


@pytest.mark.parametrize("metric", ["risk_ratio", "global_ratio", "prevalence_ratio"])
def test_intervals_cover_the_true_ratio_95_percent_of_the_time(metric):
    """Simulated multinomial tables: the interval must hold the true ratio ~95% of the time."""
    from tests.reference import ratio_value
    rng = np.random.default_rng(2)
    N, share, rate_in, rate_out = 4000, 0.1, 0.3, 0.05
    probs = np.array([share * rate_in, share * (1 - rate_in), (1 - share) * rate_out,
                      (1 - share) * (1 - rate_out)])
    # The true ratio from the expected counts.
    ea, eb, ec, _ = probs * N
    truth = ratio_value(metric, ea, ea + eb, ea + ec, N)
    cells = rng.multinomial(N, probs, size=4000)
    a, b, c = cells[:, 0], cells[:, 1], cells[:, 2]
    lo, hi = ratio_ci(metric, a, a + b, a + c, np.full(len(a), N))
    coverage = np.mean((lo <= truth) & (truth <= hi))
    assert 0.93 <= coverage <= 0.97, coverage


def test_interval_edges():
    lo, hi = ratio_ci("risk_ratio", [5, 0, 5], [5, 10, 100], [5, 5, 5], [100, 100, 100])
    assert math.isinf(hi[0]) and 1 < lo[0] < math.inf     # infinite ratio: open above
    assert (lo[1], hi[1]) == (0.0, 0.0)                    # no outliers in S
    assert (lo[2], hi[2]) == (0.0, 0.0)                    # S is every row: ratio 0 by definition
    lo, hi = ratio_ci("prevalence_ratio", [4], [4], [10], [100])
    assert math.isinf(hi[0]) and lo[0] > 1
    # All rows of S are outliers: the interval is not a point (the rate 10/10 is uncertain).
    lo, hi = ratio_ci("risk_ratio", [10], [10], [536], [50_000])
    ratio = (10 / 10) / (526 / 49_990)
    assert lo[0] < ratio < hi[0]


def test_bh_adjustment_matches_its_definition():
    rng = np.random.default_rng(3)
    p = rng.random(200) ** 3
    m = len(p)
    # q_i = min over j with p_j >= p_i of m p_j / rank_j, capped at 1.
    ranks = np.argsort(np.argsort(p)) + 1
    want = np.array([min(1.0, min(m * p[j] / ranks[j] for j in range(m) if p[j] >= p[i])) for i in range(m)])
    np.testing.assert_allclose(bh_adjusted(p), want, rtol=1e-12)
    # A larger family: the untested members count as p = 1.
    padded = np.concatenate([p, np.ones(300)])
    ranks = np.argsort(np.argsort(padded, kind="stable"), kind="stable") + 1
    want = np.array([min(1.0, min(len(padded) * padded[j] / ranks[j] for j in range(len(padded))
                                  if padded[j] >= p[i])) for i in range(m)])
    np.testing.assert_allclose(bh_adjusted(p, m=500), want, rtol=1e-12)


def test_every_explanation_carries_its_statistics():
    table, _ = planted_table(50_000, seed=5)
    found = BatchExplainer(min_ratio=2.0).explain(encode_arrow(table, ATTRS), table.column("anomalous").to_numpy())
    assert found
    O, N = float(table.column("anomalous").to_numpy().sum()), float(table.num_rows)
    for e in found:
        o, n = int(e.outlier_count), int(e.count)
        assert e.p_value == pytest.approx(scipy_p(o, n, int(O), int(N)), rel=1e-9)
        lo, hi = e.ratio_ci
        assert lo <= e.ratio <= hi


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_max_p_value_keeps_planted_causes_and_drops_noise(seed):
    # At 50k events chance over-representations of one app version or carrier pass the
    # default thresholds. Pure noise shares no item with a planted cause; explanations that
    # do (a planted pair plus an app version, part of the planted triple) are real
    # over-representations, which the test must not count against the filter.
    table, causes = planted_table(50_000, seed=seed)
    enc = encode_arrow(table, ATTRS)
    outliers = table.column("anomalous").to_numpy()
    planted_items = {item for c in causes for item in c.items()}

    def pure_noise(found):
        return [e for e in found if not planted_items & set(e.attributes)]

    everything = BatchExplainer().explain(enc, outliers)
    kept = BatchExplainer(max_p_value=0.01).explain(enc, outliers)
    assert pure_noise(everything), "the test needs noise explanations"
    assert pure_noise(kept) == []
    assert all(c in [dict(e.attributes) for e in kept] for c in causes)
    assert set(kept) <= set(everything)


def test_max_p_value_off_changes_nothing():
    table, _ = planted_table(40_000, seed=6)
    enc = encode_arrow(table, ATTRS)
    outliers = table.column("anomalous").to_numpy()
    assert BatchExplainer().explain(enc, outliers) == BatchExplainer(max_p_value=None).explain(enc, outliers)
    assert BatchExplainer(max_p_value=1.0).explain(enc, outliers) == BatchExplainer().explain(enc, outliers)


def test_streaming_statistics_use_the_decayed_counts():
    table, _ = planted_table(30_000, seed=7)
    enc = encode_arrow(table, ATTRS[:4])
    outliers = table.column("anomalous").to_numpy()
    ex = StreamingExplainer(ATTRS[:4], decay=0.3, max_p_value=0.05)
    for lo in range(0, 30_000, 10_000):
        ex.update([c[lo:lo + 10_000] for c in enc.codes], outliers[lo:lo + 10_000]).advance()
    O, N = ex.totals
    found = ex.explanations()
    assert found and not float(N).is_integer()
    for f in found:
        assert f.p_value == pytest.approx(scipy_p(round(f.outlier_count), round(f.count), round(O), round(N)), rel=1e-9)
    state = StreamingExplainer.from_state(ex.to_state())
    assert state.max_p_value == 0.05 and state.explanations() == found


@pytest.mark.parametrize("bad", [0, 1.5, -0.1])
def test_bad_max_p_value_names_the_parameter(bad):
    with pytest.raises(ValueError, match="max_p_value"):
        BatchExplainer(max_p_value=bad).validate()
