"""A growing code space per attribute: the same value always gets the same code.

Each shard encodes its own rows with fresh encoders; the global stage maps every shard's
values into one :class:`ValueEncoder` per attribute, so codes agree across shards.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from macrobase.columns import dictionary_codes


class ValueEncoder:
    """A global, growing code space for one attribute: codes never change once given.

    Known values are looked up by Arrow (``index_in``, no per-value Python) while the
    attribute has at most ``ARROW_LOOKUP_LIMIT`` values; only values never seen before
    go through Python. Beyond that (a million device ids) a dict lookup per distinct value
    of the batch is cheaper than hashing the whole value set again for every batch.
    """

    ARROW_LOOKUP_LIMIT = 1 << 16

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []
        self._known: pa.Array | None = None

    def encode(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        local, dictionary = dictionary_codes(column)
        lut = np.empty(len(dictionary) + 1, dtype=np.int32)
        lut[-1] = -1  # local -1 (null) picks lut[-1] = -1
        todo = range(len(dictionary))
        if self._known is not None and self._known.type == dictionary.type:
            found = pc.index_in(dictionary, value_set=self._known)
            lut[:-1] = found.fill_null(-1).to_numpy(zero_copy_only=False)
            todo = np.flatnonzero(lut[:-1] < 0).tolist()
        if todo:
            new = dictionary.take(pa.array(todo, pa.int64())).to_pylist() if len(todo) < len(dictionary) \
                else dictionary.to_pylist()
            for i, v in zip(todo, new):
                code = self.codes.get(v)
                if code is None:
                    code = self.codes[v] = len(self.values)
                    self.values.append(v)
                lut[i] = code
            small = len(self.values) <= self.ARROW_LOOKUP_LIMIT
            self._known = pa.array(self.values, type=dictionary.type) if small else None
        return lut[local]

    def __getstate__(self) -> dict:
        return {"values": self.values}  # codes and the Arrow lookup are rebuilt on load

    def __setstate__(self, state: dict) -> None:
        self.values = list(state["values"])
        self.codes = {v: i for i, v in enumerate(self.values)}
        self._known = None
