"""Google OAuth 2.0 for installed apps, emulated: accounts, clients, authorization codes and tokens.

Mirrors (PROTOCOLS.md §2 and §6):

- ``GET /o/oauth2/auth`` (also ``/o/oauth2/v2/auth``): accounts.google.com's authorization endpoint. Consent is
  automatic (or denied once on request); the answer is a 302 to the loopback ``redirect_uri`` with
  ``state``, ``code`` and ``scope`` (or ``error=access_denied``). Requests Google would refuse get Google's
  kind of refusal: an error *page* (no redirect) for a bad client, redirect URI, response type or PKCE.
- ``POST /token``: oauth2.googleapis.com/token for ``authorization_code`` (client auth by HTTP Basic or in the
  body, PKCE S256 checked) and ``refresh_token`` grants, with Google's error bodies and statuses.
- ``POST /revoke``: oauth2.googleapis.com/revoke (revokes the whole grant of that token).
- ``GET /oauth2/v2/userinfo`` (and ``/oauth2/v3/userinfo``): the signed-in account.

Strict where Google is (or where the app must be able to rely on it):

- the redirect URI must be http on a loopback host (any port); PKCE ``S256`` is required; so is ``state``
  (Google itself tolerates its absence; the emulator does not, so the app cannot forget it);
- codes are single-use, expire after 60 s and are bound to the client, the redirect URI and the challenge; a
  wrong ``code_verifier`` is ``invalid_grant`` and burns the code;
- a refresh token comes only with ``access_type=offline``, and only on the first consent of that account to
  that client or with ``prompt=consent`` (as with Google: reconnecting without it yields no refresh token);
- the token response echoes the requested ``scope`` verbatim (oauthlib warns when it differs);
- revoking any token of a grant (test control or ``/revoke``) kills its refresh and access tokens.

The state here is guarded by the lock the caller passes in; every public method takes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

DEFAULT_CLIENT_ID = "kite-test-client"
DEFAULT_CLIENT_SECRET = "kite-test-secret"
DEFAULT_EMAIL = "alice@example.com"
DEFAULT_NAME = "Alice Example"
DRIVE_FILE_SCOPE = "https://www.googleapis.com/auth/drive.file"
DEFAULT_SCOPE = DRIVE_FILE_SCOPE
CODE_LIFETIME = 60.0
ACCESS_TOKEN_LIFETIME = 3599
_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_NO_STORE = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Pragma": "no-cache"}


@dataclass
class Reply:
    """What an endpoint answers; the HTTP handler writes it out."""

    status: int
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass
class Account:
    email: str
    name: str
    id: str = field(default_factory=lambda: str(100000000000000000000 + secrets.randbelow(10**20)))


@dataclass
class AccessToken:
    token: str
    email: str
    client_id: str
    scope: str
    expires_at: float
    refresh_token: str | None = None
    revoked: bool = False

    @property
    def scopes(self) -> set[str]:
        return set(self.scope.split())


@dataclass
class RefreshToken:
    token: str
    email: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    email: str
    expires_at: float
    offline: bool
    used: bool = False


@dataclass
class AuthorizeRequest:
    """One visit to the authorization endpoint: the raw path+query and its parameters (first values)."""

    url: str
    params: dict[str, str]
    status: int = 0


@dataclass
class TokenRequest:
    """One call to the token endpoint, with how the client authenticated and what it got."""

    grant_type: str
    params: dict[str, str]
    client_id: str | None
    basic_auth: bool
    status: int = 0
    error: str | None = None


def s256(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL-NOPAD(SHA256(ASCII(verifier)))."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def _error_page(status: int, error: str, detail: str) -> Reply:
    page = (
        f"<!doctype html><html><head><title>Error {status}: {html.escape(error)}</title></head>"
        f"<body><h1>Access blocked: authorization error</h1><p>Error {status}: {html.escape(error)}</p>"
        f"<p>{html.escape(detail)}</p></body></html>"
    )
    return Reply(status, body=page.encode(), content_type="text/html; charset=utf-8")


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply(status, json={"error": error, "error_description": description}, headers=dict(_NO_STORE))


def _is_loopback_redirect(uri: str) -> bool:
    """Google's rule for desktop clients: http on a loopback address, any port, no fragment."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1") and not parts.fragment


class GoogleOAuth:
    """Accounts, OAuth clients, codes and tokens of the emulated Google identity service."""

    def __init__(self, clock: Callable[[], float] = time.time, lock: threading.RLock | None = None) -> None:
        self._clock = clock
        self.lock = lock or threading.RLock()
        self.clients: dict[str, str] = {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        self.accounts: dict[str, Account] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.codes: dict[str, AuthCode] = {}
        self.grants: set[tuple[str, str]] = set()  # (client_id, email) pairs that have consented with offline access
        self.authorize_requests: list[AuthorizeRequest] = []
        self.token_requests: list[TokenRequest] = []
        self.signed_in = self.account(DEFAULT_EMAIL, DEFAULT_NAME)
        self._deny_next = 0

    # -- test controls ------------------------------------------------------------------------------
    def account(self, email: str, name: str | None = None) -> Account:
        """The account for ``email``, created on first use."""
        with self.lock:
            found = self.accounts.get(email)
            if found is None:
                found = self.accounts[email] = Account(email, name or email.split("@")[0].title())
            elif name:
                found.name = name
            return found

    def register_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients[client_id] = client_secret

    def sign_in_as(self, email: str, name: str | None = None) -> Account:
        """The account the (automatic) consent screen signs in with from now on."""
        with self.lock:
            self.signed_in = self.account(email, name)
            return self.signed_in

    def deny_next_consent(self, times: int = 1) -> None:
        with self.lock:
            self._deny_next += times

    def issue_tokens(
        self, email: str | None = None, *, client_id: str = DEFAULT_CLIENT_ID, scope: str = DEFAULT_SCOPE
    ) -> dict[str, Any]:
        """A refresh + access token pair as if ``email`` had consented to ``client_id`` for ``scope``."""
        with self.lock:
            if client_id not in self.clients:
                raise KeyError(f"unknown OAuth client {client_id!r}")
            account = self.account(email) if email else self.signed_in
            self.grants.add((client_id, account.email))
            refresh = self._mint_refresh(account.email, client_id, scope)
            access = self._mint_access(account.email, client_id, scope, refresh.token)
            return {
                "access_token": access.token,
                "refresh_token": refresh.token,
                "expires_in": ACCESS_TOKEN_LIFETIME,
                "token_type": "Bearer",
                "scope": scope,
                "email": account.email,
                "client_id": client_id,
                "client_secret": self.clients[client_id],
            }

    def revoke(self, token: str) -> bool:
        """Revoke the grant ``token`` (a refresh or access token) belongs to, as the user or Google would."""
        with self.lock:
            found = self.refresh_tokens.get(token) or self.access_tokens.get(token)
            if found is None or found.revoked:
                return False
            self._revoke_grant(found.client_id, found.email)
            return True

    def revoke_all(self) -> None:
        with self.lock:
            for record in [*self.refresh_tokens.values(), *self.access_tokens.values()]:
                record.revoked = True
            self.grants.clear()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (401) from now on; refresh tokens keep working."""
        with self.lock:
            now = self._clock()
            for record in self.access_tokens.values():
                record.expires_at = min(record.expires_at, now - 1)

    def authenticate(self, authorization: str | None) -> AccessToken | None:
        """The live access token named by an ``Authorization: Bearer`` header, or None."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        with self.lock:
            record = self.access_tokens.get(authorization[7:].strip())
            if record is None or record.revoked or record.expires_at <= self._clock():
                return None
            return record

    # -- endpoints ------------------------------------------------------------------------------------
    def authorize(self, url: str, query: dict[str, list[str]]) -> Reply:
        """GET /o/oauth2/auth: validate like Google, then auto-consent (or deny) with a 302 to the app."""
        params = {name: values[0] for name, values in query.items()}
        entry = AuthorizeRequest(url, params)
        with self.lock:
            self.authorize_requests.append(entry)
            reply = self._authorize(params)
        entry.status = reply.status
        return reply

    def _authorize(self, params: dict[str, str]) -> Reply:
        client_id = params.get("client_id", "")
        if client_id not in self.clients:
            return _error_page(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = params.get("redirect_uri", "")
        if not _is_loopback_redirect(redirect_uri):
            return _error_page(
                400,
                "redirect_uri_mismatch",
                f"Desktop apps must use a loopback redirect URI such as http://127.0.0.1:PORT/ (got {redirect_uri!r}).",
            )
        if params.get("response_type") != "code":
            return _error_page(
                400, "unsupported_response_type", f"Invalid response_type: {params.get('response_type')}"
            )
        scope = params.get("scope", "")
        if not scope.strip():
            return _error_page(400, "invalid_request", "Missing required parameter: scope")
        challenge = params.get("code_challenge")
        if not challenge or params.get("code_challenge_method") != "S256":
            return _error_page(
                400, "invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"
            )
        if not _PKCE_CHALLENGE.match(challenge):
            return _error_page(400, "invalid_request", "Invalid code_challenge.")
        if "code_verifier" in params:
            return _error_page(400, "invalid_request", "code_verifier must not be sent to the authorization endpoint.")
        state = params.get("state")
        if not state:
            return _error_page(400, "invalid_request", "Missing required parameter: state")
        separator = "&" if urlsplit(redirect_uri).query else "?"
        if self._deny_next:
            self._deny_next -= 1
            location = redirect_uri + separator + urlencode({"error": "access_denied", "state": state})
            return Reply(302, headers={"Location": location})
        email = self.signed_in.email
        # Google hands out a refresh token for offline access on first consent, or again with prompt=consent.
        offline = params.get("access_type") == "offline"
        first_time = (client_id, email) not in self.grants
        fresh_refresh = offline and (first_time or "consent" in params.get("prompt", "").split())
        if offline:
            self.grants.add((client_id, email))
        code = AuthCode(
            "4/0A" + secrets.token_urlsafe(40),
            client_id,
            redirect_uri,
            challenge,
            scope,
            email,
            self._clock() + CODE_LIFETIME,
            fresh_refresh,
        )
        self.codes[code.code] = code
        location = redirect_uri + separator + urlencode({"state": state, "code": code.code, "scope": scope})
        return Reply(302, headers={"Location": location})

    def token(self, headers: dict[str, str], body: bytes) -> Reply:
        """POST /token: the authorization_code and refresh_token grants."""
        try:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            form = {}
        basic = self._basic_auth(headers.get("authorization", ""))
        entry = TokenRequest(form.get("grant_type", ""), form, None, basic is not None)
        with self.lock:
            self.token_requests.append(entry)
            reply = self._token(headers, form, basic, entry)
        entry.status = reply.status
        entry.error = reply.json.get("error") if isinstance(reply.json, dict) else None
        return reply

    @staticmethod
    def _basic_auth(header: str) -> tuple[str, str] | None:
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ("", "")
        return user, password

    def _token(
        self, headers: dict[str, str], form: dict[str, str], basic: tuple[str, str] | None, entry: TokenRequest
    ) -> Reply:
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _oauth_error(
                400, "invalid_request", "Invalid Content-Type; expected application/x-www-form-urlencoded"
            )
        client_id, client_secret = basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
        entry.client_id = client_id
        if not client_id or client_id not in self.clients:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if client_secret != self.clients[client_id]:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(client_id, form)
        if grant_type == "refresh_token":
            return self._refresh(client_id, form)
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type or ''}")

    def _exchange_code(self, client_id: str, form: dict[str, str]) -> Reply:
        if not form.get("code"):
            return _oauth_error(400, "invalid_request", "Missing required parameter: code")
        code = self.codes.get(form["code"])
        if code is None:
            return _oauth_error(400, "invalid_grant", "Malformed auth code.")
        if code.used or code.expires_at <= self._clock() or code.client_id != client_id:
            code.used = True
            return _oauth_error(400, "invalid_grant", "Bad Request")
        if form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        verifier = form.get("code_verifier")
        if not verifier:
            return _oauth_error(400, "invalid_grant", "Missing code verifier.")
        code.used = True  # a wrong verifier burns the code too: it may have been intercepted
        if s256(verifier) != code.code_challenge:
            return _oauth_error(400, "invalid_grant", "Bad Request")
        refresh_token = self._mint_refresh(code.email, client_id, code.scope).token if code.offline else None
        access = self._mint_access(code.email, client_id, code.scope, refresh_token or self._any_refresh(code))
        payload: dict[str, Any] = {
            "access_token": access.token,
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "token_type": "Bearer",
            "scope": code.scope,
        }
        if refresh_token:
            payload["refresh_token"] = refresh_token
        return Reply(200, json=payload, headers=dict(_NO_STORE))

    def _any_refresh(self, code: AuthCode) -> str | None:
        for record in self.refresh_tokens.values():
            if record.client_id == code.client_id and record.email == code.email and not record.revoked:
                return record.token
        return None

    def _refresh(self, client_id: str, form: dict[str, str]) -> Reply:
        token = form.get("refresh_token")
        if not token:
            return _oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        record = self.refresh_tokens.get(token)
        if record is None or record.revoked:
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        if record.client_id != client_id:
            return _oauth_error(401, "unauthorized_client", "Unauthorized")
        scope = record.scope
        if form.get("scope"):
            if not set(form["scope"].split()) <= set(record.scope.split()):
                return _oauth_error(400, "invalid_scope", "Bad Request")
            scope = form["scope"]
        access = self._mint_access(record.email, client_id, scope, record.token)
        # No refresh_token in a refresh response: google-auth keeps the one it has (PROTOCOLS §2).
        payload = {
            "access_token": access.token,
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "scope": scope,
            "token_type": "Bearer",
        }
        return Reply(200, json=payload, headers=dict(_NO_STORE))

    def revoke_endpoint(self, query: dict[str, list[str]], body: bytes) -> Reply:
        """POST /revoke?token=… (or token in the form body)."""
        form = parse_qs(body.decode("utf-8", "replace"))
        token = (query.get("token") or form.get("token") or [""])[0]
        if not self.revoke(token):
            return _oauth_error(400, "invalid_token", "Token expired or revoked")
        return Reply(200, json={})

    def userinfo(self, authorization: str | None) -> Reply:
        """GET /oauth2/v2/userinfo: the account an access token belongs to."""
        record = self.authenticate(authorization)
        if record is None:
            return Reply(
                401,
                json={
                    "error": {
                        "code": 401,
                        "message": "Request is missing required authentication credential.",
                        "status": "UNAUTHENTICATED",
                    }
                },
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        account = self.accounts[record.email]
        return Reply(
            200,
            json={"id": account.id, "email": account.email, "verified_email": True, "name": account.name},
        )

    # -- internals -------------------------------------------------------------------------------------
    def _mint_refresh(self, email: str, client_id: str, scope: str) -> RefreshToken:
        record = RefreshToken("1//0g" + secrets.token_urlsafe(48), email, client_id, scope)
        self.refresh_tokens[record.token] = record
        return record

    def _mint_access(self, email: str, client_id: str, scope: str, refresh_token: str | None) -> AccessToken:
        record = AccessToken(
            "ya29.a0" + secrets.token_urlsafe(60),
            email,
            client_id,
            scope,
            self._clock() + ACCESS_TOKEN_LIFETIME,
            refresh_token,
        )
        self.access_tokens[record.token] = record
        return record

    def _revoke_grant(self, client_id: str, email: str) -> None:
        for record in [*self.refresh_tokens.values(), *self.access_tokens.values()]:
            if record.client_id == client_id and record.email == email:
                record.revoked = True
        self.grants.discard((client_id, email))
