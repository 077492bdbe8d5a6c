"""Keep secrets in source URLs out of logs, errors and the UI."""

from __future__ import annotations

import re

# user:password@ in the authority part of a URL.
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*):(?P<secret>[^/@\s]*)@")
# ?password=... &token=... in query strings.
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pass|pwd|token|access_token|key|apikey|api_key|secret|auth|sig|signature)=)"
    r"(?P<secret>[^&;#\s]*)",
    re.IGNORECASE,
)

MASK = "***"


def mask_secrets(text: str) -> str:
    """Replace passwords and tokens in every URL inside ``text`` with ``***``.

    Args:
        text: a URL, or a message that may contain URLs.

    Returns:
        The same text with ``user:secret@`` turned into ``user:***@`` and secret-looking query
        parameters (``password=``, ``token=``, ...) blanked.
    """
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)


def one_line(text: str) -> str:
    """The first non-empty line of ``text``, secrets masked (errors must be one line)."""
    for line in str(text).splitlines():
        if line.strip():
            return mask_secrets(line.strip())
    return ""
