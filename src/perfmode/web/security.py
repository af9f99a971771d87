"""Who may talk to the page: the checks trusted local UIs (Jupyter and the like) make.

- DNS rebinding: a page on evil.example whose name is made to resolve to 127.0.0.1 reaches
  the server with ``Host: evil.example``. Only loopback names are served.
- CSRF: any page the user visits can send a form or a ``fetch`` to 127.0.0.1. A change is
  accepted only with ``Origin`` equal to the page's own origin (browsers always send it on
  a cross-site POST and cannot be made to forge it) and a JSON body.
- Exposed to a network (an explicit flag): every request needs the token, given once in
  the URL and kept in a cookie the browser sends back only to this origin.

Pure functions: the ASGI layer in ``app.py`` only asks them.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from perfmode.errors import UsageError

TOKEN_COOKIE = "perfmode_ui_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
EXPOSE_FLAG = "--expose-control-of-this-machine"
TOKEN_ENV = "PERFMODE_UI_TOKEN"


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``::1`` (with or without brackets)."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name part of a Host header: ``[::1]:3200`` → ``[::1]``, ``a:3200`` → ``a``."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        return header[: end + 1] if end > 0 else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def check_bind_host(host: str, exposed: bool) -> None:
    """Refuse to listen beyond this machine unless the user said they mean it."""
    if is_loopback(host) or exposed:
        return
    raise UsageError(
        f"--host {host} would let anyone who can reach this machine start and stop programs "
        f"on it; keep the default 127.0.0.1, or pass {EXPOSE_FLAG} if you mean it "
        "(a token is then required)"
    )


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


@dataclass(frozen=True)
class Guard:
    """The checks every request passes; ``token`` is set only when exposed to a network."""

    token: str | None = None

    def check(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        query: str = "",
    ) -> Refusal | None:
        host = headers.get("host", "")
        if self.token is None and not is_loopback(host_name(host)):
            return Refusal(
                403,
                f"Host {host!r} is not this machine's loopback name; "
                "open the page at http://127.0.0.1 with the port perfmode ui printed",
            )
        if self.token is not None and not self._token_ok(headers, query):
            return Refusal(401, "a token is required: open the URL that perfmode ui printed")
        if method.upper() not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is None or origin.lower() != f"http://{host}".lower():
                seen = f"Origin {origin!r}" if origin is not None else "no Origin header"
                return Refusal(
                    403,
                    f"a change must come from the page itself ({seen}, expected "
                    f"http://{host}); nothing was changed",
                )
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return Refusal(415, "a change must be sent as application/json")
        return None

    def token_in_query(self, query: str) -> bool:
        """The token came in the URL: the page then keeps it in a cookie and drops it."""
        return self.token is not None and _same(parse_qs(query).get("token", [""])[0], self.token)

    def _token_ok(self, headers: dict[str, str], query: str) -> bool:
        assert self.token is not None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), self.token):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is just no token
            return False
        if TOKEN_COOKIE in cookie and _same(cookie[TOKEN_COOKIE].value, self.token):
            return True
        return self.token_in_query(query)


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
