"""Import Apache Beam without its GCP warning on machines without the GCP extras.

Beam logs "apitools not found ..." on the root logger at import time; users of a
local pipeline cannot act on it, so it is filtered (everything else still shows).
"""
import logging


def _not_gcp_noise(record: logging.LogRecord) -> bool:
    return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_not_gcp_noise)

import apache_beam  # noqa: E402,F401  (imported here, after the filter, on purpose)
