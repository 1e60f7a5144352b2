"""Attribute encoding: attribute values to dense integer codes, one code space per attribute.

Missing values get code -1 and are never items. The explainer only ever sees codes;
values are looked up again when explanations are reported, exactly as they appear in
the data.

>>> enc = encode_columns({"model": ["M1", None, "M2", "M1"]})
>>> enc.codes[0].tolist(), enc.values[0]
([0, -1, 1, 0], ('M1', 'M2'))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

MISSING = -1


@dataclass(frozen=True)
class EncodedAttributes:
    """Integer-coded attribute columns.

    ``codes[j]`` is an int32 array (one code per row, -1 for missing) for attribute
    ``names[j]``; ``values[j][c]`` is the original value of code ``c`` (any sequence: a tuple, or a lazy
    view over an Arrow dictionary so a million distinct values are not turned into
    Python objects up front).
    """

    names: tuple[str, ...]
    codes: tuple[np.ndarray, ...]
    values: tuple[Sequence[Any], ...]

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.codes) == len(self.values)):
            raise ValueError("names, codes and values must have one entry per attribute")
        lengths = {len(c) for c in self.codes}
        if len(lengths) > 1:
            raise ValueError(f"attribute columns differ in length: {sorted(lengths)}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"attribute names must be unique, got {list(self.names)}")

    @property
    def n_rows(self) -> int:
        return len(self.codes[0]) if self.codes else 0

    def cardinalities(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.values)

    @classmethod
    def from_codes(
        cls, names: Sequence[str], codes: Sequence[np.ndarray], values: Sequence[Sequence[Any]]
    ) -> "EncodedAttributes":
        """Wrap columns that are already dictionary-encoded (e.g. by Arrow)."""
        checked = []
        for name, c, v in zip(names, codes, values):
            c = np.ascontiguousarray(c, dtype=np.int32)
            if c.size and (c.min() < MISSING or c.max() >= len(v)):
                raise ValueError(f"attribute {name!r}: codes must lie in [-1, {len(v) - 1}]")
            checked.append(c)
        return cls(tuple(names), tuple(checked), tuple(values))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def encode_column(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Encode one column; codes follow first appearance so the result is deterministic."""
    arr = np.asarray(values, dtype=object)
    mapping: dict[Any, int] = {}
    codes = np.empty(len(arr), dtype=np.int32)
    # Per-row Python is acceptable here: this is the convenience path for notebooks and
    # tests. The product hands Arrow dictionary-encoded columns to `from_codes`.
    for i, v in enumerate(arr):
        if _is_missing(v):
            codes[i] = MISSING
        else:
            codes[i] = mapping.setdefault(v, len(mapping))
    return codes, tuple(mapping)


def encode_columns(columns: Mapping[str, Sequence[Any]]) -> EncodedAttributes:
    """Encode several named columns of plain Python/NumPy values."""
    names, codes, values = [], [], []
    for name, col in columns.items():
        c, v = encode_column(col)
        names.append(name)
        codes.append(c)
        values.append(v)
    return EncodedAttributes(tuple(names), tuple(codes), tuple(values))


def remap_codes(codes: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[code]`` per row, missing (-1) kept: move one batch's codes into a code space
    shared by every batch (a GIL-free kernel, so batches are remapped on several threads).

    >>> remap_codes(np.array([1, -1, 0], np.int32), np.array([7, 3], np.int32)).tolist()
    [3, -1, 7]
    """
    from explain._counting import remap_codes as kernel

    return kernel(np.ascontiguousarray(codes, dtype=np.int32), np.ascontiguousarray(lut, dtype=np.int32))
