"""Guard for the published layout: five top-level packages from one distribution.

macrobase-streaming installs ``macrobase``, ``operators``, ``explain``, ``connectors`` and
``dashboard`` as top-level packages (docs/DESIGN.md, "Layout"). The last four are common
words, so another distribution may provide a package of the same name. Python would then
import the wrong one, or pip would have mixed its files into ours, and the failure would
surface far away as an ``ImportError`` or ``AttributeError`` naming something else.
``import macrobase`` runs :func:`check` first and stops with :class:`PackageConflictError`,
which names the packages, paths and distributions involved.

It must stay cheap: it runs on every start of the CLI. ``importlib.metadata``'s
``packages_distributions()`` answers the question directly but reads the metadata of every
installed distribution (about 250 ms in this project's venv), so the normal path asks only
what is cheap, in well under a millisecond:

* each sibling package resolves (``importlib.util.find_spec``, nothing imported) to
  ``<root>/<name>/__init__.py``, next to this ``macrobase`` (else it is *shadowed* by
  another ``<name>`` earlier on ``sys.path``);
* when installed from the wheel (our ``.dist-info`` in ``<root>``), every file in the five
  package folders is listed in our ``RECORD`` and each ``__init__.py`` has the size and
  hash recorded there (else another distribution wrote into them).

``packages_distributions()`` is called only to name the culprits once a conflict is found.
A source checkout or editable install has no ``RECORD`` to compare with, so there only
shadowing is checked. Not caught: a distribution whose only files are identical in name to
ours and that was installed *before* us (ours replaced them; ours works, it does not).

>>> check()  # this checkout or installation is consistent
"""

from __future__ import annotations

import importlib.util
import os

DISTRIBUTION = "macrobase-streaming"
PACKAGES = ("macrobase", "operators", "explain", "connectors", "dashboard")
_SIBLINGS = PACKAGES[1:]


class PackageConflictError(ImportError):
    """Another distribution provides (or shadows) one of macrobase-streaming's top-level packages."""


def check(root: str | None = None) -> None:
    """Raise :class:`PackageConflictError` if the five packages under ``root`` (default:
    the folder holding this ``macrobase``) are not all macrobase-streaming's own."""
    if root is None:
        here = __file__
        if not here:  # pragma: no cover - frozen or zipped: nothing on disk to compare
            return
        root = os.path.dirname(os.path.dirname(os.path.abspath(here)))
    problems = _shadowed(root)
    record = _record(root)
    if record is not None:
        problems += _foreign_files(root, record)
    if problems:
        raise PackageConflictError(_message(root, problems))


def _shadowed(root: str) -> list[str]:
    problems = []
    for name in _SIBLINGS:
        spec = importlib.util.find_spec(name)
        want = os.path.join(root, name, "__init__.py")
        origin = spec.origin if spec is not None else None
        if spec is None:
            problems.append(f"{name}: not found (expected {want})")
        elif origin is None or os.path.normcase(os.path.abspath(origin)) != os.path.normcase(want):
            where = origin or ", ".join(spec.submodule_search_locations or []) or "?"
            problems.append(f"{name}: imported from {where}, not {want}")
    return problems


def _record(root: str) -> dict[str, tuple[str, str]] | None:
    """``{relative path: (hash, size)}`` from our wheel's RECORD in ``root``, or None when
    ``root`` is not where the wheel was installed (a checkout, an editable install)."""
    prefix = DISTRIBUTION.replace("-", "_") + "-"
    try:
        with os.scandir(root) as entries:
            info = next((e.path for e in entries
                         if e.name.startswith(prefix) and e.name.endswith(".dist-info")), None)
    except OSError:
        return None
    if info is None:
        return None
    try:
        with open(os.path.join(info, "RECORD"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    record = {}
    for line in lines:
        parts = line.rsplit(",", 2)  # path,sha256=...,size (our paths hold no commas)
        if len(parts) == 3:
            record[parts[0]] = (parts[1], parts[2])
    if not any(p.startswith("macrobase/") for p in record):
        return None  # an editable install's RECORD lists no package files
    return record


def _foreign_files(root: str, record: dict[str, tuple[str, str]]) -> list[str]:
    problems = []
    for name in PACKAGES:
        for rel in _files(root, name):
            if rel not in record:
                problems.append(f"{name}: {rel} is not part of {DISTRIBUTION}")
        init = f"{name}/__init__.py"
        want = record.get(init)
        path = os.path.join(root, name, "__init__.py")
        if want is None or not os.path.isfile(path):
            continue
        hash_, size = want
        if (size and str(os.path.getsize(path)) != size) or (hash_ and _hash(path) != hash_):
            problems.append(f"{name}: {init} was overwritten by another distribution")
    return problems


def _files(root: str, name: str):
    """Relative paths of the files under ``root/name``, skipping ``__pycache__``."""
    stack = [name]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel)) as entries:
                for e in entries:
                    if e.name == "__pycache__":
                        continue
                    child = f"{rel}/{e.name}"
                    if e.is_dir():
                        stack.append(child)
                    else:
                        yield child
        except OSError:
            continue


def _hash(path: str) -> str:
    """``sha256=<urlsafe base64, unpadded>`` as in RECORD (binascii: base64 would load re)."""
    import binascii
    import hashlib

    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).digest()
    text = binascii.b2a_base64(digest, newline=False).decode("ascii")
    return "sha256=" + text.rstrip("=").replace("+", "-").replace("/", "_")


def _message(root: str, problems: list[str]) -> str:
    names = sorted({p.split(":", 1)[0] for p in problems})
    owners = []
    try:  # slow (it reads every distribution's metadata), so only once something is wrong
        from importlib.metadata import packages_distributions

        found = packages_distributions()
        for n in names:
            others = sorted(set(found.get(n, ())) - {DISTRIBUTION})
            if others:
                owners.append(f"'{n}' is also provided by {', '.join(others)}")
    except Exception:  # pragma: no cover - the message is still useful without names
        pass
    lines = [f"{DISTRIBUTION} installs the top-level packages {', '.join(PACKAGES)}, "
             f"but in {root} some of them are not its own:"]
    lines += [f"  - {p}" for p in problems]
    lines += [f"  - {o}" for o in owners]
    lines.append(f"Install {DISTRIBUTION} in its own virtual environment "
                 f"(python -m venv), apart from the distributions named above.")
    return "\n".join(lines)
