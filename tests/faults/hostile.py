"""Hostile messages and the verdict each must get (DESIGN.md, "Every message gets a verdict")."""
from __future__ import annotations

# (value, verdict): "event" or the dead letter's reason.
HOSTILE: list[tuple[bytes | None, str]] = [
    (None, "tombstone"),
    (b"", "invalid_json"),
    (b'{"power_drain": 1, "region": "\xed\xa0\x80"}', "invalid_utf8"),    # a lone surrogate as bytes
    (b"\x00\xff\xfe\x80 binary garbage", "invalid_utf8"),
    (b'{"power_drain": 1', "invalid_json"),                                # truncated
    (b"[" * 100_000, "invalid_json"),                                      # nested 100,000 deep
    (b"[1]", "not_an_object"), (b'"s"', "not_an_object"), (b"42", "not_an_object"),
    (b"null", "not_an_object"), (b"true", "not_an_object"),
    (b'{"power_drain": null, "region": "r"}', "missing_metric"),
    (b'{"power_drain": "high", "region": "r"}', "non_numeric_metric"),
    (b'{"power_drain": true, "region": "r"}', "non_numeric_metric"),
    (b'{"power_drain": {"a": 1}, "region": "r"}', "non_numeric_metric"),
    (b'{"power_drain": [1], "region": "r"}', "non_numeric_metric"),
    (b'{"power_drain": NaN, "region": "r"}', "non_finite_metric"),
    (b'{"power_drain": Infinity, "region": "r"}', "non_finite_metric"),
    (b'{"power_drain": 1e400, "region": "r"}', "non_finite_metric"),
    # Valid events: attribute values that are not plain strings become items as text.
    (b'{"power_drain": 100, "power_drain": 101, "region": "r"}', "event"),  # duplicate key: last wins
    (b'{"power_drain": 100, "region": 7}', "event"),
    (b'{"power_drain": 100, "region": {"nested": [1, 2]}}', "event"),
    (b'{"power_drain": 100, "region": "' + b"x" * 10_000 + b'"}', "event"),
    (b'{"power_drain": 100, "region": "\xf0\x9f\x94\xa5"}', "event"),       # emoji
    (b'{"power_drain": 100, "region": "\\ud800"}', "event"),                # escaped lone surrogate
    (b'{"power_drain": 100, "region": "' + b"y" * 2_000_000 + b'"}', "event"),  # a 2 MB value
    # 20 MB: over both clients' per-partition fetch size (16 MB, 1 MB); they fetch it whole.
    (b'{"power_drain": 100, "region": "' + b"z" * 20_000_000 + b'"}', "event"),
]
