"""macrobase-streaming: the product (config, pipelines, store, HTTP API, CLI) over the
``operators``, ``explain``, ``connectors`` and ``dashboard`` packages it ships with."""

from macrobase._toplevel import check as _check_top_level

_check_top_level()  # the four sibling packages are ours, not another distribution's (cheap)
del _check_top_level
