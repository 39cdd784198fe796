"""Who may use the jobs page: loopback by default, a token on any other address, a header on
every state change (so no other site can trigger a retry through a form or a link)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from upload_jobs.errors import WebAccessRefused
from upload_jobs.redaction import register_secrets

TOKEN_HEADER = "X-Upload-Jobs-Token"
SESSION_COOKIE = "upload_jobs_session"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The login page and what it loads hold no job data; everything else needs the token.
OPEN_PATHS = frozenset({"/login", "/static/login.js", "/static/app.css"})
SAFE_METHODS = frozenset({"GET", "HEAD"})

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def security_headers(media_base_url: str) -> dict[str, str]:
    """The headers on every response; videos play from `media_base_url` (the public base URL,
    where completed jobs' links point) and from nowhere else."""
    # A source ending in "/" matches every path below it; CSP's separators are escaped away.
    media = quote(media_base_url.rstrip("/") + "/", safe=":/@!$&'()*+=-._~%")
    return {
        "Content-Security-Policy": f"{CONTENT_SECURITY_POLICY}; media-src {media}",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) only takes connections from this machine."""
    if host.strip("[]") in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def require_safe_binding(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without `UPLOAD_JOBS_WEB_TOKEN`."""
    if token is None and not is_loopback(host):
        raise WebAccessRefused(
            f"Refusing to serve the jobs page on {host} without a token: anyone who can reach "
            "it could retry uploads. Set UPLOAD_JOBS_WEB_TOKEN to a long random value "
            "(e.g. `export UPLOAD_JOBS_WEB_TOKEN=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')`), or bind to 127.0.0.1."
        )


@dataclass(frozen=True)
class AccessPolicy:
    """The token requests must carry (None: loopback, open) and the Host names accepted."""

    token: str | None
    # None accepts any Host: behind a token, a rebound DNS name gains an attacker nothing.
    allowed_hosts: frozenset[str] | None

    def __post_init__(self) -> None:
        # Whatever logs a request's headers or a form body from now on shows it masked.
        register_secrets(self.token)

    @classmethod
    def for_binding(cls, host: str, token: str | None) -> AccessPolicy:
        """The policy for a server bound to `host`; call `require_safe_binding` first."""
        hosts = None if token else LOOPBACK_HOSTS | {host.strip("[]")}
        return cls(token, hosts)

    def session_value(self) -> str:
        """The login cookie's value: derived from the token, so the cookie never holds it."""
        assert self.token is not None
        return hashlib.sha256(f"upload-jobs-session:{self.token}".encode()).hexdigest()

    def token_matches(self, offered: str | None) -> bool:
        """Whether `offered` is the token, compared in constant time."""
        return self.token is not None and offered is not None and _same(offered, self.token)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def access_guard(
    policy: AccessPolicy, headers: dict[str, str]
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """HTTP middleware: Host check, token check, header on state changes, and `headers` (the
    security headers) on every response."""

    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        refusal = _refusal(policy, request)
        response = refusal if refusal is not None else await call_next(request)
        response.headers.update(headers)
        return response

    return guard


def _refusal(policy: AccessPolicy, request: Request) -> Response | None:
    hostname = (request.url.hostname or "").strip("[]")
    if policy.allowed_hosts is not None and hostname not in policy.allowed_hosts:
        # A page on another site reaching 127.0.0.1 through its own DNS name (DNS rebinding).
        return _error(400, f"Unknown Host {hostname!r}: open the page as http://127.0.0.1")
    offered = request.headers.get(TOKEN_HEADER)
    is_open = request.url.path in OPEN_PATHS
    if policy.token is not None and not is_open and not _authenticated(policy, request, offered):
        if request.url.path.startswith("/api/"):
            return _error(
                401,
                f"This server needs its access token: send it in the {TOKEN_HEADER} header "
                "(the value of UPLOAD_JOBS_WEB_TOKEN where the server runs).",
            )
        return RedirectResponse("/login", status_code=303)
    if request.method not in SAFE_METHODS and not is_open and not offered:
        return _error(
            403,
            f"State-changing requests need the {TOKEN_HEADER} header (the server's token, or "
            "any value on loopback without one). Forms and links cannot send it, which is "
            "what keeps other sites from triggering retries.",
        )
    return None


def _authenticated(policy: AccessPolicy, request: Request, offered: str | None) -> bool:
    if policy.token_matches(offered):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    return (
        request.method in SAFE_METHODS
        and cookie is not None
        and _same(cookie, policy.session_value())
    )


def _error(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "error_kind": None}, status_code=status_code)


def login_page(message: str | None = None, status_code: int = 200) -> HTMLResponse:
    """The token form; its script keeps the token for the page's API calls in this tab."""
    notice = f'<p class="login-error" role="alert">{escape(message)}</p>' if message else ""
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Upload Jobs: sign in</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css"></head>
<body class="login"><main class="login-box"><h1>Upload Jobs</h1>
<p>This server needs its access token (UPLOAD_JOBS_WEB_TOKEN).</p>{notice}
<form id="login-form" method="post" action="/login">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Open the jobs page</button></form></main>
<script src="/static/login.js"></script></body></html>""",
        status_code=status_code,
    )
