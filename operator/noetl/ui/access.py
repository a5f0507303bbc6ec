"""Who may act through the web view: the checks every action (a POST) passes before it runs.

Reading is open to whoever reaches the port, as before; acting needs, in this order:

- the access token, when there is one (`noetl ui --token`, NOETL_UI_TOKEN, or one made and
  printed at start when actions listen beyond loopback): opening any page once with
  `?token=TOKEN` stores it in a cookie (HttpOnly, SameSite=Strict) that later requests carry;
- a request from the view's own pages: its Origin (else its Referer) names the host the request
  was sent to, and, on a server listening on loopback only, that host is a loopback name (a page
  of another site whose name resolves to 127.0.0.1 cannot act);
- the form token of this server process, which every page's forms carry.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

COOKIE = "noetl-ui-token"
LOOPBACK_NAMES = ("localhost", "localhost.")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or address, an IPv6 one with or without brackets) is this machine's
    loopback."""
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same(given: str, expected: str) -> bool:
    """A comparison of secrets that takes as long whatever the first wrong character."""
    return secrets.compare_digest(given.encode(), expected.encode())


@dataclass
class Access:
    token: str | None = None  # the access token; None: none needed
    loopback_only: bool = True  # the server listens on loopback only
    form_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def signed_in(self, request: web.Request) -> bool:
        """Whether the request carries the access token (always, when none is needed)."""
        if self.token is None:
            return True
        given = request.cookies.get(COOKIE, "")
        return same(given, self.token)

    def refusal(self, request: web.Request, form: Mapping[str, object]) -> str | None:
        """Why this POST may not act, for people; None when it may."""
        if not self.signed_in(request):
            return "this view's actions need its access token: open it with ?token=TOKEN once"
        sender = request.headers.get("Origin") or request.headers.get("Referer") or ""
        if urlsplit(sender).netloc != request.host:
            return "refused: the request does not come from this view's own pages"
        if self.loopback_only and not is_loopback(urlsplit(f"//{request.host}").hostname or ""):
            return f"refused: this view listens on loopback and is not {request.host}"
        if not same(str(form.get("token", "")), self.form_token):
            return "missing or wrong form token: reload the page"
        return None

    @web.middleware
    async def sign_in(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """`?token=TOKEN` on any page: the access token, kept in a cookie, and the page again
        without it (so it stays out of the history and of links copied from the address bar)."""
        given = request.query.get("token")
        if given is None or request.method != "GET" or self.token is None:
            return await handler(request)
        if not same(given, self.token):
            raise web.HTTPForbidden(text="wrong access token")
        query = request.url.query.copy()
        del query["token"]
        response = web.HTTPSeeOther(str(request.rel_url.with_query(query)))
        response.set_cookie(COOKIE, given, httponly=True, samesite="Strict", path="/")
        raise response
