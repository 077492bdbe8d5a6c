"""One exception family for everything a user can cause.

Every error a user can act on is a :class:`ConvscopeError` whose message is a single line; the CLI
prints it as ``error: <message>`` without a traceback (``--debug`` shows it). Anything else that
escapes is a bug in convscope.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConvscopeError(Exception):
    """Base class: a one-line, user-actionable failure."""

    exit_code = 1


class UsageError(ConvscopeError):
    """The command line or a request names something impossible (exit code 2)."""

    exit_code = 2


class ModelError(ConvscopeError):
    """A model could not be found, built or loaded."""


class WeightsError(ModelError):
    """Weights could not be downloaded, read or matched to the architecture."""


class LayerError(ConvscopeError):
    """A layer name or index does not exist in the model."""


class SourceError(ConvscopeError):
    """A frame source could not be opened or read."""


class InputError(ConvscopeError):
    """An input image or file is missing, unreadable or not what it claims to be."""


class OutputError(ConvscopeError):
    """An output path cannot be written."""


class RequestError(ConvscopeError):
    """A view request (from the CLI or a browser) is invalid for the loaded model."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean: a, b?)"`` for close matches of ``name``, or ``""``."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""
