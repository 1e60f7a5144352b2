"""Bridge from Arrow columns to the explainer's integer codes (no per-row Python)."""
from __future__ import annotations

from collections.abc import Sequence
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from explain import EncodedAttributes


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
