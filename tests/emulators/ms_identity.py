"""Emulated Microsoft identity platform (login.microsoftonline.com, v2.0 endpoints) served over TLS.

MSAL refuses ``http://`` authorities (PROTOCOLS.md §0.7, §5.4), so this server always speaks https with the
per-session certificate from :mod:`tests.emulators.tls`. Point MSAL at it with::

    sess = requests.Session(); sess.trust_env = False; sess.verify = str(identity.cert_path)
    app = msal.PublicClientApplication(identity.client_id, authority=identity.authority(),
                                       instance_discovery=False, http_client=sess)

Endpoints (``{tenant}`` is ``common``, ``consumers``, ``organizations``, a GUID or a domain name):

* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (also without ``/v2.0``; both answer with the v2.0
  endpoints, see the note in :meth:`IdentityEmulator.openid_configuration`)
* ``GET /{tenant}/oauth2/v2.0/authorize``: the browser leg. Checks client_id, loopback redirect_uri,
  ``response_type=code``, PKCE ``S256``; answers per ``response_mode`` (``form_post``: auto-submitting HTML
  form; ``query``/``fragment``: 302 to the redirect URI).
* ``POST /{tenant}/oauth2/v2.0/token``: ``authorization_code`` (single-use code, redirect_uri equality, PKCE)
  and ``refresh_token`` (rotates on every use; the old one becomes invalid).
* ``GET /{tenant}/discovery/v2.0/keys``: an empty JWKS (id_tokens are unsigned, ``alg: none``).

The :class:`Directory` (accounts + token store) is shared with the Graph emulator, which accepts exactly the
access tokens minted here.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from tests.emulators.server import EmulatorHandler, EmulatorServer
from tests.emulators.tls import TlsFiles, session_certificate

DEFAULT_CLIENT_ID = "kite-test-client"
DEFAULT_USERNAME = "bob@example.com"
DEFAULT_NAME = "Bob Example"
#: The tenant every personal Microsoft account (MSA) lives in; ``/consumers`` maps to it.
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
DEFAULT_SCOPES = ("Files.ReadWrite.AppFolder", "User.Read", "offline_access", "openid", "profile")
ACCESS_TOKEN_LIFETIME = 3600
CODE_LIFETIME = 600
_OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LOOPBACK_REDIRECT = re.compile(r"^http://(localhost|127\.0\.0\.1):(\d{1,5})(/[^?#]*)?$")
_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(payload: Any) -> str:
    return b64url(json.dumps(payload, separators=(",", ":")).encode())


def decode_b64url_json(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def pkce_challenge(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def split_scopes(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else list(value)
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return tuple(seen.values())


# ---------------------------------------------------------------------------------------------------------------
# Accounts and the token store (shared with the Graph emulator)
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Account:
    username: str
    name: str
    cid: str  # 16 lowercase hex digits: the personal-account id Graph shows as /me id and drive id
    tenant_id: str = CONSUMERS_TENANT_ID

    @property
    def uid(self) -> str:
        """The object id (``oid``) in the GUID form MSA uses: ``00000000-0000-0000-<cid>``."""
        return f"00000000-0000-0000-{self.cid[:4]}-{self.cid[4:]}"

    @property
    def home_account_id(self) -> str:
        return f"{self.uid}.{self.tenant_id}"

    @property
    def client_info(self) -> str:
        return b64url_json({"uid": self.uid, "utid": self.tenant_id})


@dataclass
class AccessToken:
    token: str
    account: Account
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    expired: bool = False  # set by expire_access_tokens(): the token is refused before its nominal expiry

    def is_valid(self, now: float | None = None) -> bool:
        return not self.expired and (now or time.time()) < self.expires_at


@dataclass
class RefreshToken:
    token: str
    account: Account
    client_id: str
    scopes: tuple[str, ...]
    issued_at: float = field(default_factory=time.time)
    state: str = "active"  # active | rotated (used once, replaced) | revoked
    replaced_by: str | None = None


class Directory:
    """Accounts, access tokens and refresh tokens. Thread-safe; one instance is shared by all MS emulators."""

    def __init__(self, default_username: str = DEFAULT_USERNAME, default_name: str = DEFAULT_NAME) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.current_username = default_username
        self.account(default_username, default_name)

    def account(self, username: str, name: str | None = None, tenant_id: str | None = None) -> Account:
        """The account for ``username`` (case-insensitive), created with a stable id on first use."""
        key = username.casefold()
        with self.lock:
            account = self.accounts.get(key)
            if account is None:
                cid = hashlib.sha256(key.encode()).hexdigest()[:16]
                display = name or username.split("@", 1)[0].replace(".", " ").title()
                account = Account(username, display, cid, tenant_id or CONSUMERS_TENANT_ID)
                self.accounts[key] = account
            else:
                if name:
                    account.name = name
                if tenant_id:
                    account.tenant_id = tenant_id
            return account

    @property
    def current_account(self) -> Account:
        return self.account(self.current_username)

    def mint(self, account: Account, client_id: str, scopes: Iterable[str], *, refresh: bool = True):
        """New access token (and refresh token, if ``refresh``) for ``account``."""
        scopes = split_scopes(scopes)
        with self.lock:
            at = AccessToken(
                "EwA" + secrets.token_urlsafe(48), account, client_id, scopes, time.time() + ACCESS_TOKEN_LIFETIME
            )
            self.access_tokens[at.token] = at
            rt = None
            if refresh:
                rt = RefreshToken("M.C5" + secrets.token_urlsafe(64), account, client_id, scopes)
                self.refresh_tokens[rt.token] = rt
            return at, rt

    def check_access_token(self, token: str | None) -> tuple[AccessToken | None, str]:
        """(token, "") when valid, else (None, the message Graph puts in its 401)."""
        if not token:
            return None, "Access token is empty."
        with self.lock:
            at = self.access_tokens.get(token)
            if at is None:
                return None, "CompactToken parsing failed with error code: 80049217"
            if not at.is_valid():
                return None, "Access token has expired or is not yet valid."
            return at, ""

    def expire_access_tokens(self, username: str | None = None) -> int:
        with self.lock:
            count = 0
            for at in self.access_tokens.values():
                mine = username is None or at.account.username.casefold() == username.casefold()
                if mine and not at.expired:
                    at.expired = True
                    count += 1
            return count


# ---------------------------------------------------------------------------------------------------------------
# Records kept for tests
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Authorization:
    """One visit to the authorize endpoint and what it answered."""

    tenant: str
    params: dict[str, str]
    client_id: str | None = None
    redirect_uri: str | None = None
    response_mode: str = "query"
    scopes: tuple[str, ...] = ()
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: str | None = None
    login_hint: str | None = None
    account: Account | None = None
    code: str | None = None
    client_info: str | None = None
    session_state: str | None = None
    error: str | None = None
    error_description: str | None = None
    redirected: bool = False  # False: the error was shown on a page, not sent to the redirect URI
    issued_at: float = field(default_factory=time.time)
    redeemed: bool = False

    @property
    def response(self) -> dict[str, str]:
        """The fields the browser delivers to the redirect URI (form_post body / query string)."""
        if self.error:
            fields = {"error": self.error, "error_description": self.error_description or ""}
        else:
            fields = {"code": self.code or ""}
            if self.client_info:
                fields["client_info"] = self.client_info
        if self.state is not None:
            fields["state"] = self.state
        if self.session_state and not self.error:
            fields["session_state"] = self.session_state
        return fields


@dataclass
class TokenRequest:
    tenant: str
    form: dict[str, str]
    status: int = 0
    error: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def grant_type(self) -> str | None:
        return self.form.get("grant_type")


@dataclass
class BrowserResult:
    """What the fake browser saw: the authorize page and the loopback listener's answer."""

    auth_uri: str
    page_status: int
    action: str | None = None
    method: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    location: str | None = None
    delivered_to: str | None = None
    delivery_status: int | None = None
    delivery_text: str | None = None
    error: BaseException | None = None


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action")
            self.method = values.get("method", "get").upper()
        elif tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def parse_form(page: str) -> tuple[str | None, str | None, dict[str, str]]:
    """(action, METHOD, fields) of the first form in an HTML page."""
    parser = _FormParser()
    parser.feed(page)
    return parser.action, parser.method, parser.fields


# ---------------------------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------------------------
class IdentityEmulator:
    """The Microsoft identity platform, over TLS on 127.0.0.1. See the module docstring."""

    def __init__(
        self,
        directory: Directory | None = None,
        *,
        tls: TlsFiles | None = None,
        client_ids: Iterable[str] = (DEFAULT_CLIENT_ID,),
    ) -> None:
        self.directory = directory or Directory()
        self.tls = tls or session_certificate()
        self.server = EmulatorServer(_IdentityHandler, tls=self.tls.server_context())
        self.server.emulator = self  # type: ignore[attr-defined]
        self.client_ids = list(client_ids)
        self.lock = self.directory.lock
        self.authorizations: list[Authorization] = []
        self.token_requests: list[TokenRequest] = []
        #: (old refresh token, new refresh token) for every successful refresh_token grant
        self.rotations: list[tuple[str, str]] = []
        self.browser_results: list[BrowserResult] = []
        self._browser_threads: list[threading.Thread] = []
        self._codes: dict[str, Authorization] = {}
        self._deny_next = False
        self._interaction: dict[str, dict[str, Any]] = {}  # username.casefold() or "*" -> error fields

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> IdentityEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> IdentityEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        return self.client_ids[0]

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def cert_path(self) -> str:
        return str(self.tls.cert_path)

    def authority(self, tenant: str = "common") -> str:
        return f"{self.base_url}/{tenant}"

    @property
    def faults(self):
        return self.server.faults

    @property
    def requests(self):
        return self.server.requests

    # -- test controls --------------------------------------------------------------------------------------
    def sign_in_as(self, username: str, name: str | None = None, tenant_id: str | None = None) -> Account:
        """The account the emulated browser is signed in with from now on."""
        with self.lock:
            account = self.directory.account(username, name, tenant_id)
            self.directory.current_username = account.username
            return account

    def deny_next_consent(self) -> None:
        """The next authorize request ends with ``error=access_denied`` (the user clicked "No")."""
        with self.lock:
            self._deny_next = True

    def last_authorization(self) -> Authorization | None:
        with self.lock:
            return self.authorizations[-1] if self.authorizations else None

    def issue_tokens(
        self,
        username: str | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        *,
        client_id: str | None = None,
        tenant: str = "common",
    ) -> dict[str, Any]:
        """Mint tokens without a browser: the same dict the token endpoint would return."""
        account = self.directory.account(username) if username else self.directory.current_account
        return self._token_response(account, client_id or self.client_id, split_scopes(scopes), tenant, None, True)

    def revoke(self, refresh_token: str) -> bool:
        with self.lock:
            rt = self.directory.refresh_tokens.get(refresh_token)
            if rt is None or rt.state == "revoked":
                return False
            rt.state = "revoked"
            return True

    def revoke_all(self, username: str | None = None, *, access_tokens: bool = False) -> int:
        """Revoke every refresh token (of ``username``). Access tokens stay valid unless ``access_tokens``:
        like Entra "revoke sessions", an access token already handed out keeps working until it expires."""
        with self.lock:
            count = 0
            for rt in self.directory.refresh_tokens.values():
                mine = username is None or rt.account.username.casefold() == username.casefold()
                if mine and rt.state != "revoked":
                    rt.state = "revoked"
                    count += 1
            if access_tokens:
                self.directory.expire_access_tokens(username)
            return count

    def expire_access_tokens(self, username: str | None = None) -> int:
        return self.directory.expire_access_tokens(username)

    def require_interaction(
        self,
        username: str | None = None,
        *,
        suberror: str = "basic_action",
        description: str = "AADSTS50076: Due to a configuration change made by your administrator, or because you "
        "moved to a new location, you must use multi-factor authentication to access the resource.",
        error_codes: tuple[int, ...] = (50076,),
    ) -> None:
        """Refresh-token grants (of ``username``, default: everyone) answer 400 ``interaction_required`` until
        an interactive sign-in (authorization_code grant) of that account succeeds or :meth:`clear_interaction`."""
        with self.lock:
            self._interaction[username.casefold() if username else "*"] = {
                "error": "interaction_required",
                "error_description": description,
                "error_codes": list(error_codes),
                "suberror": suberror,
            }

    def clear_interaction(self) -> None:
        with self.lock:
            self._interaction.clear()

    def refresh_token_state(self, refresh_token: str) -> str:
        """``active``, ``rotated`` (used and replaced), ``revoked`` or ``unknown``."""
        with self.lock:
            rt = self.directory.refresh_tokens.get(refresh_token)
            return rt.state if rt else "unknown"

    def throttle_token_endpoint(self, status: int = 429, retry_after: int | None = 5, times: int = 1):
        """The next ``times`` token requests get ``status`` (429/5xx) with an AAD-style body."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = {
            "error": "temporarily_unavailable",
            "error_description": "AADSTS50196: The server terminated an operation because it encountered a "
            "client request loop. Please retry later."
            if status == 429
            else "AADSTS90033: A transient error has occurred. Please try again.",
            "error_codes": [50196 if status == 429 else 90033],
        }
        pattern = r"/oauth2/v2\.0/token"
        return self.server.faults.add("POST", pattern, status=status, json=body, headers=headers, times=times)

    # -- a fake system browser ------------------------------------------------------------------------------
    def visit(self, auth_uri: str, *, deliver: bool = False) -> BrowserResult:
        """GET ``auth_uri`` like a browser (trusting the session cert) and parse the answer.

        With ``deliver=True`` it also submits the auto-posting form (or follows the 302) to the redirect URI,
        e.g. MSAL's loopback listener; ``localhost`` is rewritten to 127.0.0.1 (the listener is IPv4-only).
        """
        import requests

        result = BrowserResult(auth_uri, 0)
        with requests.Session() as browser:
            browser.trust_env = False
            browser.verify = self.cert_path
            try:
                page = browser.get(auth_uri, allow_redirects=False, timeout=10)
                result.page_status = page.status_code
                if page.status_code in (301, 302, 303):
                    result.location = page.headers.get("Location")
                elif "text/html" in page.headers.get("Content-Type", ""):
                    result.action, result.method, result.fields = parse_form(page.text)
                if deliver:
                    if result.action and result.method == "POST":
                        target = _loopback_ipv4(result.action)
                        answer = browser.post(target, data=result.fields, timeout=10)
                    elif result.location and urlsplit(result.location).scheme == "http":
                        target = _loopback_ipv4(result.location)
                        answer = browser.get(target, timeout=10)
                    else:
                        target, answer = None, None
                    if answer is not None:
                        result.delivered_to = target
                        result.delivery_status = answer.status_code
                        result.delivery_text = answer.text
            except Exception as exc:  # recorded for the test to inspect
                result.error = exc
        with self.lock:
            self.browser_results.append(result)
        return result

    def browser_callback(self) -> Callable[[str], None]:
        """A stand-in for the system browser, e.g. ``auth_uri_callback=identity.browser_callback()`` with
        ``webbrowser.open`` patched to return False. MSAL calls it from its listener thread *before* it starts
        listening, so the visit runs in its own daemon thread; results land in :attr:`browser_results`."""

        def open_in_browser(auth_uri: str) -> None:
            thread = threading.Thread(target=self.visit, args=(auth_uri,), kwargs={"deliver": True}, daemon=True)
            with self.lock:
                self._browser_threads.append(thread)
            thread.start()

        return open_in_browser

    def join_browsers(self, timeout: float = 10.0) -> list[BrowserResult]:
        """Wait for the fake browser visits started by :meth:`browser_callback`; returns :attr:`browser_results`.
        (MSAL may return before the browser thread has read the listener's answer.)"""
        with self.lock:
            threads = list(self._browser_threads)
        for thread in threads:
            thread.join(timeout)
        with self.lock:
            return list(self.browser_results)

    # -- protocol logic (called by the handler) -------------------------------------------------------------
    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        """Discovery document. Real Entra serves v1 endpoints at the path without ``/v2.0``; this emulator
        serves the v2.0 endpoints at both paths (MSAL's ``oidc_authority=`` mode reads the path without it)."""
        base = f"{self.base_url}/{tenant}"
        issuer_tenant = _issuer_tenant(tenant)
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.base_url}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "oid",
                "email",
            ],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }

    def authorize(self, tenant: str, params: dict[str, str]) -> Authorization:
        auth = Authorization(tenant, params)
        auth.client_id = params.get("client_id")
        auth.redirect_uri = params.get("redirect_uri")
        auth.response_mode = params.get("response_mode") or "query"
        auth.scopes = split_scopes(params.get("scope"))
        auth.state = params.get("state")
        auth.nonce = params.get("nonce")
        auth.code_challenge = params.get("code_challenge")
        auth.code_challenge_method = params.get("code_challenge_method")
        auth.prompt = params.get("prompt")
        auth.login_hint = params.get("login_hint")
        with self.lock:
            self.authorizations.append(auth)
            # Errors Entra shows on its own page: the redirect URI cannot be trusted yet.
            if not auth.client_id:
                return _page_error(auth, "invalid_request", "AADSTS900144: The request body must contain the "
                                   "following parameter: 'client_id'.")  # fmt: skip
            if auth.client_id not in self.client_ids:
                return _page_error(auth, "unauthorized_client", f"AADSTS700016: Application with identifier "
                                   f"'{auth.client_id}' was not found in the directory.")  # fmt: skip
            if not auth.redirect_uri or not _valid_redirect(auth.redirect_uri):
                return _page_error(auth, "invalid_request", f"AADSTS50011: The redirect URI '{auth.redirect_uri}' "
                                   "specified in the request does not match the redirect URIs configured for the "
                                   "application. Only loopback http://localhost:<port> or http://127.0.0.1:<port> "
                                   "is registered.")  # fmt: skip
            if auth.response_mode not in ("query", "fragment", "form_post"):
                auth.response_mode = "query"
                return _redirect_error(auth, "invalid_request", "AADSTS900144: unsupported response_mode.")
            # Errors sent to the redirect URI.
            if params.get("response_type") != "code":
                bad = params.get("response_type")
                return _redirect_error(auth, "unsupported_response_type", f"AADSTS700054: response_type '{bad}' "
                                       "is not enabled for the application.")  # fmt: skip
            if not auth.scopes:
                return _redirect_error(auth, "invalid_request", "AADSTS900144: The request body must contain the "
                                       "following parameter: 'scope'.")  # fmt: skip
            if not auth.code_challenge:
                return _redirect_error(auth, "invalid_request", "AADSTS9002325: Proof Key for Code Exchange is "
                                       "required for cross-origin authorization code redemption.")  # fmt: skip
            if auth.code_challenge_method != "S256" or not _PKCE_CHALLENGE.match(auth.code_challenge):
                return _redirect_error(auth, "invalid_request", "AADSTS501491: Invalid size of Code_Challenge "
                                       "parameter or code_challenge_method is not S256.")  # fmt: skip
            if self._deny_next:
                self._deny_next = False
                return _redirect_error(auth, "access_denied", "AADSTS65004: User declined to consent to access "
                                       "the app.")  # fmt: skip
            account = self.directory.current_account
            auth.account = account
            auth.code = "M.C5" + secrets.token_urlsafe(40)
            if params.get("client_info") == "1":
                auth.client_info = account.client_info
            auth.session_state = str(uuid.uuid4())
            auth.redirected = True
            self._codes[auth.code] = auth
            return auth

    def token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        record = TokenRequest(tenant, dict(form))
        with self.lock:
            self.token_requests.append(record)
            status, payload = self._token(tenant, form)
            record.status = status
            record.error = payload.get("error")
            return status, payload

    def _token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client_id = form.get("client_id")
        if not client_id:
            return _token_error(400, "invalid_request", 900144, "The request body must contain the following "
                                "parameter: 'client_id'.")  # fmt: skip
        if client_id not in self.client_ids:
            return _token_error(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' "
                                "was not found in the directory.")  # fmt: skip
        if form.get("client_secret") or form.get("client_assertion"):
            return _token_error(401, "invalid_client", 700025, "Client is public so neither 'client_assertion' "
                                "nor 'client_secret' should be presented.")  # fmt: skip
        grant = form.get("grant_type")
        if not grant:
            return _token_error(400, "invalid_request", 900144, "The request body must contain the following "
                                "parameter: 'grant_type'.")  # fmt: skip
        if grant == "authorization_code":
            return self._grant_code(tenant, client_id, form)
        if grant == "refresh_token":
            return self._grant_refresh(tenant, client_id, form)
        return _token_error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type "
                            f"'{grant}'.")  # fmt: skip

    def _grant_code(self, tenant: str, client_id: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code = form.get("code")
        if not code:
            return _token_error(400, "invalid_request", 900144, "The request body must contain the following "
                                "parameter: 'code'.")  # fmt: skip
        auth = self._codes.get(code)
        if auth is None or auth.account is None:
            return _token_error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if auth.redeemed:
            return _token_error(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, "
                                "please retry with a new valid code or use an existing refresh token.")  # fmt: skip
        auth.redeemed = True  # single use: any redemption attempt burns the code (RFC 6749 §4.1.2)
        if time.time() - auth.issued_at > CODE_LIFETIME:
            return _token_error(400, "invalid_grant", 70008, "The provided authorization code or refresh token has "
                                "expired due to inactivity.")  # fmt: skip
        if auth.client_id != client_id:
            return _token_error(400, "invalid_grant", 700005, "Provided Authorization Code is intended to use "
                                "against other tenant or application.")  # fmt: skip
        if form.get("redirect_uri") != auth.redirect_uri:
            return _token_error(400, "invalid_grant", 500117, "The reply uri specified in the request does not "
                                "match the reply uri used in the authorization request.")  # fmt: skip
        verifier = form.get("code_verifier")
        if not verifier:
            return _token_error(400, "invalid_grant", 50148, "The code_verifier is missing; the authorization "
                                "request used PKCE.")  # fmt: skip
        if pkce_challenge(verifier) != auth.code_challenge:
            return _token_error(400, "invalid_grant", 501481, "The Code_Verifier does not match the "
                                "code_challenge supplied in the authorization request.")  # fmt: skip
        self._interaction.pop(auth.account.username.casefold(), None)
        self._interaction.pop("*", None)
        scopes = split_scopes(form.get("scope")) or auth.scopes
        return 200, self._token_response(
            auth.account, client_id, scopes, tenant, auth.nonce, form.get("client_info") == "1"
        )

    def _grant_refresh(self, tenant: str, client_id: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = form.get("refresh_token")
        if not token:
            return _token_error(400, "invalid_request", 900144, "The request body must contain the following "
                                "parameter: 'refresh_token'.")  # fmt: skip
        rt = self.directory.refresh_tokens.get(token)
        if rt is None or rt.state != "active":
            return _token_error(400, "invalid_grant", 700082, "The refresh token has expired due to inactivity. "
                                "The token was issued on 2024-01-01T00:00:00.0000000Z and was inactive for "
                                "90.00:00:00.", suberror="bad_token")  # fmt: skip
        if rt.client_id != client_id:
            return _token_error(400, "invalid_grant", 700024, "The refresh token was issued to a different "
                                "client.", suberror="client_mismatch")  # fmt: skip
        required = self._interaction.get(rt.account.username.casefold()) or self._interaction.get("*")
        if required is not None:
            return 400, _error_envelope(dict(required))
        scopes = split_scopes(form.get("scope")) or rt.scopes
        payload = self._token_response(rt.account, client_id, scopes, tenant, None, form.get("client_info") == "1")
        rt.state = "rotated"
        rt.replaced_by = payload.get("refresh_token")
        if rt.replaced_by:
            self.rotations.append((rt.token, rt.replaced_by))
        return 200, payload

    def _token_response(
        self,
        account: Account,
        client_id: str,
        scopes: tuple[str, ...],
        tenant: str,
        nonce: str | None,
        client_info: bool,
    ) -> dict[str, Any]:
        lowered = {s.lower() for s in scopes}
        at, rt = self.directory.mint(account, client_id, scopes, refresh="offline_access" in lowered)
        payload: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s.lower() != "offline_access"),
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME,
            "access_token": at.token,
        }
        if rt is not None:
            payload["refresh_token"] = rt.token
        if "openid" in lowered:
            payload["id_token"] = self._id_token(account, client_id, tenant, nonce, "email" in lowered)
        if client_info:
            payload["client_info"] = account.client_info
        return payload

    def _id_token(self, account: Account, client_id: str, tenant: str, nonce: str | None, email: bool) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "ver": "2.0",
            "iss": f"{self.base_url}/{account.tenant_id}/v2.0",
            "sub": b64url(hashlib.sha256(f"{account.uid}|{client_id}".encode()).digest()[:24]),
            "aud": client_id,
            "exp": now + ACCESS_TOKEN_LIFETIME,
            "iat": now,
            "nbf": now,
            "name": account.name,
            "preferred_username": account.username,
            "oid": account.uid,
            "tid": account.tenant_id,
            "aio": secrets.token_urlsafe(12),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if email:
            claims["email"] = account.username
        del tenant  # the issuer names the account's tenant, as Entra does for /common
        return f"{b64url_json({'typ': 'JWT', 'alg': 'none'})}.{b64url_json(claims)}."


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def _valid_tenant(tenant: str) -> bool:
    return (
        tenant in ("common", "consumers", "organizations")
        or bool(_GUID.match(tenant))
        or ("." in tenant and re.fullmatch(r"[A-Za-z0-9.-]+", tenant) is not None)
    )


def _issuer_tenant(tenant: str) -> str:
    if tenant == "consumers":
        return CONSUMERS_TENANT_ID
    if tenant in ("common", "organizations"):
        return "{tenantid}"
    return tenant


def _valid_redirect(uri: str) -> bool:
    match = _LOOPBACK_REDIRECT.match(uri)
    return bool(match) and 0 < int(match.group(2)) < 65536


def _loopback_ipv4(url: str) -> str:
    parts = urlsplit(url)
    if parts.hostname == "localhost":
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _page_error(auth: Authorization, error: str, description: str) -> Authorization:
    auth.error, auth.error_description, auth.redirected = error, description, False
    return auth


def _redirect_error(auth: Authorization, error: str, description: str) -> Authorization:
    auth.error, auth.error_description, auth.redirected = error, description, True
    return auth


def _error_envelope(payload: dict[str, Any]) -> dict[str, Any]:
    payload.setdefault("timestamp", time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()))
    payload.setdefault("trace_id", str(uuid.uuid4()))
    payload.setdefault("correlation_id", str(uuid.uuid4()))
    payload.setdefault("error_uri", "https://login.microsoftonline.com/error?code=" + str(payload["error_codes"][0]))
    return payload


def _token_error(
    status: int, error: str, code: int, description: str, *, suberror: str | None = None
) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {description}",
        "error_codes": [code],
    }
    if suberror:
        payload["suberror"] = suberror
    return status, _error_envelope(payload)


_FORM_POST_PAGE = """<html><head><title>Working...</title></head><body>
<form method="POST" name="hiddenform" action="{action}">
{inputs}
<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit" /></noscript>
</form>
<script language="javascript">window.setTimeout(function(){{document.forms[0].submit()}}, 0);</script>
</body></html>"""

_ERROR_PAGE = """<html><head><title>Sign in to your account</title></head><body>
<h1>Sorry, but we're having trouble signing you in.</h1>
<p id="error">{error}: {description}</p></body></html>"""


_DISCOVERY = ".well-known/openid-configuration"


class _IdentityHandler(EmulatorHandler):
    disable_nagle_algorithm = True  # else Nagle + delayed ACK cost ~40 ms per request on loopback

    @property
    def emulator(self) -> IdentityEmulator:
        return self.server.emulator  # type: ignore[attr-defined,no-any-return]

    def route(self) -> None:
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            return self.send_json(404, {"error": "not_found"})
        tenant, rest = segments[0], "/".join(segments[1:])
        if not _valid_tenant(tenant):
            return self.send_json(*_token_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found."))
        if self.command == "GET" and rest in (f"v2.0/{_DISCOVERY}", _DISCOVERY):
            return self.send_json(200, self.emulator.openid_configuration(tenant))
        if self.command == "GET" and rest == "discovery/v2.0/keys":
            return self.send_json(200, {"keys": []})
        if rest == "oauth2/v2.0/authorize" and self.command == "GET":
            return self._authorize(tenant, _single(parse_qs(parts.query, keep_blank_values=True)))
        if rest == "oauth2/v2.0/token" and self.command == "POST":
            form = _single(parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True))
            status, payload = self.emulator.token(tenant, form)
            headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
            return self.send_json(status, payload, headers)
        return self.send_json(
            404, _token_error(404, "invalid_request", 900561, f"The endpoint only accepts other requests: {rest}")[1]
        )

    def _authorize(self, tenant: str, params: dict[str, str]) -> None:
        auth = self.emulator.authorize(tenant, params)
        if not auth.redirected:
            error, description = html.escape(auth.error or ""), html.escape(auth.error_description or "")
            page = _ERROR_PAGE.format(error=error, description=description)
            return self.send_bytes(400, page.encode(), content_type="text/html; charset=utf-8")
        assert auth.redirect_uri is not None
        fields = auth.response
        if auth.response_mode == "form_post":
            inputs = "\n".join(
                f'<input type="hidden" name="{html.escape(k, quote=True)}" value="{html.escape(v, quote=True)}" />'
                for k, v in fields.items()
            )
            page = _FORM_POST_PAGE.format(action=html.escape(auth.redirect_uri, quote=True), inputs=inputs)
            return self.send_bytes(200, page.encode(), content_type="text/html; charset=utf-8")
        separator = "#" if auth.response_mode == "fragment" else ("&" if "?" in auth.redirect_uri else "?")
        location = auth.redirect_uri + separator + urlencode(fields)
        return self.send_bytes(302, b"", {"Location": location})


def _single(qs: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[-1] for k, v in qs.items()}
