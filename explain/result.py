"""Explanations as frozen dataclasses, and their strict-JSON form."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence


@dataclass(frozen=True)
class Explanation:
    """An attribute combination over-represented among the outliers.

    ``attributes`` are ``(name, value)`` pairs in attribute order; values are reported
    as they appear in the data. ``p_value`` is the one-sided Fisher exact test of the
    itemset's 2x2 table, ``ratio_ci`` a 95% interval for the ratio, ``implies`` the
    ``(name, value)`` pairs every matching row also has (from other itemsets matching
    exactly these rows, which are not listed separately).
    """

    attributes: tuple[tuple[str, Any], ...]
    support: float
    ratio: float
    ratio_metric: str
    outlier_count: float
    count: float
    p_value: float
    ratio_ci: tuple[float, float]
    implies: tuple[tuple[str, Any], ...]

    @property
    def order(self) -> int:
        return len(self.attributes)

    def to_dict(self) -> dict[str, Any]:
        """DESIGN.md's JSON object; an infinite ratio (or bound) becomes the string "inf"."""
        return {
            "attributes": {k: _json_value(v) for k, v in self.attributes},
            "support": self.support,
            self.ratio_metric: json_number(self.ratio),
            "outlier_count": json_count(self.outlier_count),
            "count": json_count(self.count),
            "p_value": self.p_value,
            "ratio_ci": [json_number(b) for b in self.ratio_ci],
            "implies": {k: _json_value(v) for k, v in self.implies},
        }

    def sentence(self) -> str:
        """Plain words: "model=M101 and firmware=0.4: 12.1x more likely, 43% of outliers"."""
        return describe(dict(self.attributes), self.ratio, self.support, dict(self.implies))


def describe_attributes(attributes: Mapping[str, Any], joiner: str = " AND ") -> str:
    """An itemset in words, in the attributes' order: ``device_model=M101 AND firmware=0.4``.

    The one spelling of an itemset: the result store's ``description`` column, the
    ``explanation`` label of ``/metrics`` and alerts (" AND "), and :func:`describe`'s
    sentences (" and ").

    >>> describe_attributes({"device_model": "M101", "firmware": "0.4"})
    'device_model=M101 AND firmware=0.4'
    >>> describe_attributes({"a": "x", "b": 1}, " and ")
    'a=x and b=1'
    """
    return joiner.join(f"{key}={value}" for key, value in attributes.items())


def describe(attributes: Mapping[str, Any], ratio: float | str, support: float,
             implies: Mapping[str, Any] | None = None) -> str:
    """One explanation as a sentence (also used for JSON documents, where inf is "inf").

    >>> describe({"a": "x", "b": 1}, "inf", 0.43, {"c": "z"})
    'a=x and b=1: infinitely more likely, 43% of outliers (these rows all also have c=z)'
    """
    items = describe_attributes(attributes, " and ")
    ratio = float(ratio)
    times = "infinitely" if math.isinf(ratio) else f"{ratio:.1f}x"
    text = f"{items}: {times} more likely, {support:.0%} of outliers"
    if implies:
        text += " (these rows all also have " + describe_attributes(implies, ", ") + ")"
    return text


def json_number(x: float) -> float | str:
    """Strict JSON has no Infinity: write it as "inf"."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def json_count(x: float) -> int | float:
    """Exact counts stay integers; decayed (streaming) counts keep 6 decimals."""
    x = float(x)
    return int(x) if x.is_integer() else round(x, 6)


def value_item_key(values: Sequence[Sequence[Any]]) -> Callable[[tuple[int, int]], tuple]:
    """Deterministic item order: attribute position, then the value's text."""
    return lambda item: (item[0], str(values[item[0]][item[1]]))


def explanations_from(found: Iterable[Any], names: Sequence[str], values: Sequence[Sequence[Any]],
                      outliers: float, ratio_metric: str) -> list[Explanation]:
    """Explanations for :class:`explain.rules.Found` itemsets of ``(attribute, code)`` items."""
    return [
        Explanation(
            attributes=tuple((names[a], values[a][c]) for a, c in f.itemset),
            support=f.outliers / outliers if outliers else 0.0,
            ratio=f.ratio,
            ratio_metric=ratio_metric,
            outlier_count=f.outliers,
            count=f.rows,
            p_value=f.p_value,
            ratio_ci=f.ratio_ci,
            implies=tuple((names[a], values[a][c]) for a, c in f.implies),
        )
        for f in found
    ]


def _json_value(v: Any) -> Any:
    # NumPy scalars (from Arrow/Parquet) are not JSON-serialisable.
    return v.item() if hasattr(v, "item") else v
