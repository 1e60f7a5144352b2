"""Bridge from Arrow columns to the explainer's integer codes (no per-row Python)."""
from __future__ import annotations

import threading
from collections.abc import Sequence
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from explain import EncodedAttributes
from explain.encoding import remap_codes


class ArrowValues(Sequence):
    """Read-only view of an Arrow dictionary; values become Python objects only when read."""

    def __init__(self, dictionary: pa.Array) -> None:
        self._dictionary = dictionary

    def __len__(self) -> int:
        return len(self._dictionary)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self._dictionary[i].to_pylist()
        return self._dictionary[i].as_py()


def dictionary_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(int32 codes with -1 for null, dictionary) for one attribute column."""
    if isinstance(column, pa.ChunkedArray):
        if pa.types.is_dictionary(column.type):
            column = column.unify_dictionaries()
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    indices = pc.fill_null(column.indices, -1).cast(pa.int32())
    return indices.to_numpy(zero_copy_only=False), column.dictionary


def encode_arrow(table: pa.Table | pa.RecordBatch, attributes: Sequence[str]) -> EncodedAttributes:
    """Dictionary-encode ``attributes`` of ``table`` for the explainer."""
    codes, values = [], []
    for name in attributes:
        c, dictionary = dictionary_codes(table.column(name))
        codes.append(c)
        values.append(ArrowValues(dictionary))
    return EncodedAttributes.from_codes(list(attributes), codes, values)


def metric_matrix(table: pa.Table | pa.RecordBatch, metrics: Sequence[str]) -> np.ndarray:
    """float64 (rows, metrics) matrix; metrics are already validated finite by the readers."""
    cols = [np.asarray(table.column(m).to_numpy(), dtype=np.float64) for m in metrics]
    return cols[0] if len(cols) == 1 else np.column_stack(cols)


class CodeSpace(Sequence):
    """One attribute's codes across every batch of an input, so counts from different
    batches add up. Codes follow first sight; the results never depend on code order
    (items are ordered by their values). Safe to call from several threads: the per-row
    work (dictionary-encoding a batch, mapping its codes) runs outside the lock, only
    the small step from a batch's dictionary to the shared one holds it.

    >>> space = CodeSpace()
    >>> space.codes(pa.array(["b", "a", None])).tolist(), space.codes(pa.array(["a", "c"])).tolist()
    ([0, 1, -1], [1, 2])
    >>> list(space)
    ['b', 'a', 'c']
    """

    def __init__(self) -> None:
        self._values: pa.Array | None = None
        self._lock = threading.Lock()

    def codes(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """int32 codes (-1 for null) of one batch's column in this space."""
        local, dictionary = dictionary_codes(column)
        with self._lock:
            lut = self._lookup(dictionary)
        # Batches of one Parquet column chunk or one table share its dictionary: their
        # codes are the shared ones already, and the remap pass is skipped.
        codes = local if lut is None else remap_codes(local, lut)
        codes.flags.writeable = False  # one array type for every batch (Numba types tuples by it)
        return codes

    def _lookup(self, dictionary: pa.Array) -> np.ndarray | None:
        """The map from a batch's codes to the shared ones; None when it is the identity."""
        if self._values is None:
            self._values = dictionary
            return None
        if dictionary.type != self._values.type:
            dictionary = _common_type(dictionary, self._values.type)
        found = pc.index_in(dictionary, value_set=self._values)
        lut = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int32)
        new = lut < 0
        if new.any():
            lut[new] = np.arange(len(self._values), len(self._values) + int(new.sum()), dtype=np.int32)
            self._values = pa.concat_arrays([self._values, dictionary.filter(pa.array(new))])
        return None if np.array_equal(lut, np.arange(len(lut), dtype=np.int32)) else lut

    def __len__(self) -> int:
        return 0 if self._values is None else len(self._values)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self._values[i].to_pylist()
        return self._values[i].as_py()


def _common_type(dictionary: pa.Array, target: pa.DataType) -> pa.Array:
    """A later batch typed differently (a JSON chunk fell back to strings): cast, or fail clearly."""
    try:
        return dictionary.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise ValueError(f"an attribute column changes type between batches ({target} then "
                         f"{dictionary.type}); convert it to one type") from None
