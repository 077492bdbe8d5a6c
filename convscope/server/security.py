"""Who may open the dashboard: the token rule, the Host check and the WebSocket Origin check.

Like Jupyter: a random token is generated unless one is given or ``--no-token`` says otherwise;
binding beyond the loopback interface without a token needs that explicit ``--no-token``. The
token is accepted from the ``token`` query parameter (the printed URL) or from the cookie the
page sets on the first visit. On a loopback bind the Host header must name the loopback (stops
DNS-rebinding pages), and a WebSocket whose Origin is another site is refused (stops other pages
from driving the dashboard through the user's browser).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from convscope.errors import UsageError

COOKIE = "convscope_token"


def cookie_name(conn: HTTPConnection) -> str:
    """The token cookie's name for this server: cookies ignore ports, two dashboards must not clash."""
    return f"{COOKIE}_{conn.url.port or (443 if conn.url.scheme in ('https', 'wss') else 80)}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def choose_token(host: str, token: str | None, no_token: bool) -> str | None:
    """The token to require (``None`` = none) for the ``--host/--token/--no-token`` flags.

    Raises:
        UsageError: ``--token`` together with ``--no-token``, or an empty token.
    """
    if token is not None and no_token:
        raise UsageError("--token and --no-token exclude each other")
    if no_token:
        return None
    if token is not None:
        if not token.strip():
            raise UsageError("--token must not be empty (use --no-token to run without one)")
        return token
    return secrets.token_hex(24)


@dataclass(frozen=True)
class Guard:
    """Checks one HTTP request or WebSocket handshake.

    Attributes:
        token: the required token, or ``None``.
        loopback_only: the server is bound to a loopback address, so only loopback Host headers
            are legitimate.
    """

    token: str | None
    loopback_only: bool

    def token_ok(self, conn: HTTPConnection) -> bool:
        if self.token is None:
            return True
        given = conn.query_params.get("token") or conn.cookies.get(cookie_name(conn)) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, conn: HTTPConnection) -> bool:
        if not self.loopback_only:
            return True
        host = urlsplit("//" + conn.headers.get("host", "")).hostname or ""
        return is_loopback(host)

    def origin_ok(self, conn: HTTPConnection) -> bool:
        """A browser's WebSocket Origin must be this server (non-browser clients send none)."""
        origin = conn.headers.get("origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc.lower() == conn.headers.get("host", "").lower()

    def why_refused(self, conn: HTTPConnection, websocket: bool = False) -> str | None:
        """A one-line reason to refuse ``conn``, or ``None`` to let it in."""
        if not self.host_ok(conn):
            return "this server only answers to localhost / 127.0.0.1 (Host header refused)"
        if websocket and not self.origin_ok(conn):
            return "cross-origin WebSocket refused"
        if not self.token_ok(conn):
            return "a valid token is required: open the URL that `convscope live` printed (…/?token=…)"
        return None
