"""The Microsoft emulators, exercised through the real msal (over TLS) and the real httpx.

Observations these tests pin down (msal 1.39, httpx 0.28) are spelled out next to the tests that show them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import webbrowser
from pathlib import Path

import httpx
import msal
import pytest
import requests

from tests.emulators.microsoft import MicrosoftEmulators
from tests.emulators.ms_graph import FRAGMENT_UNIT, QuickXorHash, quick_xor_hash
from tests.emulators.ms_identity import DEFAULT_SCOPES, decode_b64url_json, pkce_challenge

SCOPES = ["Files.ReadWrite.AppFolder", "User.Read"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ms():
    with MicrosoftEmulators() as emulators:
        yield emulators


@pytest.fixture
def http(ms):
    with ms.http_session() as session:
        yield session


def token_posts(ms: MicrosoftEmulators) -> int:
    """Token requests that reached the identity server (including faulted ones)."""
    return sum(1 for r in ms.identity.requests if r.method == "POST" and r.path.endswith("/oauth2/v2.0/token"))


def run(coro):
    return asyncio.run(coro)


def graph_client(ms: MicrosoftEmulators, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=ms.graph_url, headers=headers, trust_env=False, timeout=10)


def bare_client() -> httpx.AsyncClient:
    """For the uploadUrl and the download host: no Authorization header."""
    return httpx.AsyncClient(trust_env=False, timeout=10)


# ---------------------------------------------------------------------------------------------------------------
# QuickXorHash
# ---------------------------------------------------------------------------------------------------------------
def _reference_quickxor(data: bytes) -> bytes:
    """Literal transcription of the published C# algorithm (three 64-bit cells, 11-bit shift), for cross-checks."""
    cells = [0, 0, 0]
    shift = 0
    for b in data:
        index, offset = shift // 64, shift % 64
        bits = 32 if index == 2 else 64
        if offset <= bits - 8:
            cells[index] ^= b << offset
        else:
            cells[index] ^= b << offset
            cells[0 if index == 2 else index + 1] ^= b >> (bits - offset)
        shift = (shift + 11) % 160
    out = bytearray()
    out += (cells[0] & (2**64 - 1)).to_bytes(8, "little")
    out += (cells[1] & (2**64 - 1)).to_bytes(8, "little")
    out += (cells[2] & (2**64 - 1)).to_bytes(8, "little")[:4]
    for j, b in enumerate(len(data).to_bytes(8, "little")):
        out[12 + j] ^= b
    return bytes(out)


def test_quickxorhash_vectors_and_streaming():
    assert quick_xor_hash(b"") == "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    assert quick_xor_hash(b"\x4a") == "SgAAAAAAAAAAAAAAAQAAAAAAAAA="
    assert quick_xor_hash(b"hello world") == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
    data = secrets.token_bytes(5000)
    assert QuickXorHash(data).digest() == _reference_quickxor(data)
    for size in (1, 159, 160, 161, 333, 1000):
        assert QuickXorHash(data[:size]).digest() == _reference_quickxor(data[:size])
    pieces = [data[0:1], data[1:160], data[160:481], data[481:4000], data[4000:]]
    streamed = QuickXorHash()
    for piece in pieces:
        streamed.update(piece)
    assert streamed.digest() == _reference_quickxor(data)


# ---------------------------------------------------------------------------------------------------------------
# Identity platform through the real msal
# ---------------------------------------------------------------------------------------------------------------
def test_discovery_documents(ms, http):
    for path in ("/common/v2.0/.well-known/openid-configuration", "/common/.well-known/openid-configuration"):
        doc = http.get(ms.identity.base_url + path, timeout=10).json()
        assert doc["authorization_endpoint"] == f"{ms.authority}/oauth2/v2.0/authorize"
        assert doc["token_endpoint"] == f"{ms.authority}/oauth2/v2.0/token"
        assert doc["issuer"].startswith(ms.identity.base_url + "/")
    assert http.get(ms.identity.base_url + "/no_such_tenant/v2.0/.well-known/openid-configuration").status_code == 400
    # msal's oidc_authority= mode reads the path without /v2.0 and checks the issuer's scheme+host:port.
    app = msal.PublicClientApplication(ms.client_id, oidc_authority=ms.authority, http_client=http)
    # Observed: without response_mode="form_post" msal 1.39 emits a UserWarning (an error under this suite's
    # filterwarnings=error).
    with pytest.warns(UserWarning, match="form_post"):
        app.initiate_auth_code_flow(SCOPES, redirect_uri="http://localhost:1")
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri="http://localhost:1", response_mode="form_post")
    assert flow["auth_uri"].startswith(f"{ms.authority}/oauth2/v2.0/authorize?")


def test_msal_refresh_token_rotates_and_old_one_is_refused(ms, http):
    tokens = ms.identity.issue_tokens()
    old_rt = tokens["refresh_token"]
    app = ms.msal_app(http_client=http)

    result = app.acquire_token_by_refresh_token(old_rt, scopes=SCOPES)
    assert "error" not in result, result
    assert result["token_source"] == "identity_provider"
    new_rt = result["refresh_token"]
    assert new_rt != old_rt
    assert ms.identity.rotations == [(old_rt, new_rt)]
    assert ms.identity.refresh_token_state(old_rt) == "rotated"
    assert ms.identity.refresh_token_state(new_rt) == "active"
    sent = ms.identity.token_requests[-1].form
    assert sent["grant_type"] == "refresh_token" and sent["client_info"] == "1"
    assert set(sent["scope"].split()) == {*SCOPES, "offline_access", "openid", "profile"}
    [account] = app.get_accounts()
    assert account["username"] == "bob@example.com"
    assert account["home_account_id"] == ms.directory.current_account.home_account_id

    # The rotated-out token is now refused. The previous answer for this exact body was a 200, so this request
    # reaches the server.
    before = token_posts(ms)
    refused = app.acquire_token_by_refresh_token(old_rt, scopes=SCOPES)
    assert token_posts(ms) == before + 1
    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [700082] and refused["suberror"] == "bad_token"
    assert refused["error_description"].startswith("AADSTS700082:")

    # Observed gotcha 10: msal caches an HTTP 400 for an identical request body for 60 s in the app's http cache.
    # Same app, same RT, same scopes: the answer comes from msal's cache and the server never sees the request.
    again = app.acquire_token_by_refresh_token(old_rt, scopes=SCOPES)
    assert again["error"] == "invalid_grant"
    assert token_posts(ms) == before + 1
    # Different scopes change the body (and the cache key), so this one reaches the server again ...
    app.acquire_token_by_refresh_token(old_rt, scopes=["User.Read"])
    assert token_posts(ms) == before + 2
    # ... and so does the same request from a fresh PublicClientApplication (the cache lives in the app object).
    with ms.http_session() as other_http:
        fresh = ms.msal_app(http_client=other_http)
        assert fresh.acquire_token_by_refresh_token(old_rt, scopes=SCOPES)["error"] == "invalid_grant"
    assert token_posts(ms) == before + 3

    # The new refresh token works, silently too (force_refresh sends the RT from msal's cache).
    silent = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert silent is not None and "access_token" in silent, silent
    assert ms.identity.refresh_token_state(new_rt) == "rotated"


def test_msal_auth_code_flow_with_pkce_and_nonce(ms, http):
    app = ms.msal_app(http_client=http)
    ms.identity.sign_in_as("alice@example.com", "Alice Liddell")
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri="http://localhost:53682", response_mode="form_post")

    page = ms.identity.visit(flow["auth_uri"])
    assert page.page_status == 200 and page.method == "POST"
    assert page.action == "http://localhost:53682"
    assert set(page.fields) == {"code", "client_info", "state", "session_state"}
    assert page.fields["state"] == flow["state"]
    assert decode_b64url_json(page.fields["client_info"]) == {
        "uid": ms.directory.account("alice@example.com").uid,
        "utid": ms.directory.account("alice@example.com").tenant_id,
    }
    auth = ms.identity.last_authorization()
    assert auth.response == page.fields
    assert auth.redirect_uri == "http://localhost:53682" and auth.response_mode == "form_post"
    assert auth.code_challenge_method == "S256" and auth.code_challenge
    # msal sends sha256-hex of its nonce on the wire and expects it back in the id_token.
    assert auth.nonce == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    assert {"offline_access", "openid", "profile", *SCOPES} == set(auth.scopes)

    result = app.acquire_token_by_auth_code_flow(flow, page.fields)
    assert "access_token" in result, result
    assert result["id_token_claims"]["preferred_username"] == "alice@example.com"
    assert result["id_token_claims"]["nonce"] == auth.nonce
    assert result["id_token_claims"]["aud"] == ms.client_id
    sent = ms.identity.token_requests[-1].form
    assert sent["grant_type"] == "authorization_code" and sent["redirect_uri"] == "http://localhost:53682"
    assert pkce_challenge(sent["code_verifier"]) == auth.code_challenge
    assert sent["code_verifier"] not in flow["auth_uri"]  # the verifier goes to /token only
    [account] = app.get_accounts()
    assert account["username"] == "alice@example.com"

    # The code is single-use.
    replay = app.acquire_token_by_auth_code_flow(flow, page.fields)
    assert replay["error"] == "invalid_grant" and replay["error_codes"] == [54005]

    # A wrong PKCE verifier is refused with invalid_grant.
    flow2 = app.initiate_auth_code_flow(SCOPES, redirect_uri="http://127.0.0.1:53682/cb", response_mode="form_post")
    fields2 = ms.identity.visit(flow2["auth_uri"]).fields
    flow2["code_verifier"] = "x" * 43
    bad = app.acquire_token_by_auth_code_flow(flow2, fields2)
    assert bad["error"] == "invalid_grant" and bad["error_codes"] == [501481]

    # msal itself refuses a response whose state does not match the flow, before any request.
    flow3 = app.initiate_auth_code_flow(SCOPES, redirect_uri="http://localhost:53682", response_mode="form_post")
    fields3 = dict(ms.identity.visit(flow3["auth_uri"]).fields, state="forged")
    before = token_posts(ms)
    with pytest.raises(ValueError, match="state"):
        app.acquire_token_by_auth_code_flow(flow3, fields3)
    assert token_posts(ms) == before


def test_authorize_validation_and_query_mode(ms, http):
    base = f"{ms.authority}/oauth2/v2.0/authorize"
    good = {
        "client_id": ms.client_id,
        "response_type": "code",
        "redirect_uri": "http://127.0.0.1:8400/",
        "scope": "openid offline_access Files.ReadWrite.AppFolder",
        "state": "s1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    # query mode: a 302 back to the redirect URI
    answer = http.get(base, params=good, allow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("http://127.0.0.1:8400/?code=")
    assert "state=s1" in answer.headers["Location"]
    # unknown client / non-loopback redirect: an error page, no redirect
    for override in ({"client_id": "someone-else"}, {"redirect_uri": "https://evil.example/cb"}):
        page = http.get(base, params={**good, **override}, allow_redirects=False)
        assert page.status_code == 400 and "AADSTS" in page.text
    # no PKCE, or plain PKCE: error sent to the redirect URI with the state
    for override in ({"code_challenge": ""}, {"code_challenge_method": "plain"}):
        answer = http.get(base, params={**good, **override}, allow_redirects=False)
        assert answer.status_code == 302 and "error=invalid_request" in answer.headers["Location"]
        assert "state=s1" in answer.headers["Location"]


def test_denied_consent_reaches_msal_as_error(ms, http):
    app = ms.msal_app(http_client=http)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri="http://localhost:53682", response_mode="form_post")
    ms.identity.deny_next_consent()
    page = ms.identity.visit(flow["auth_uri"])
    assert page.fields["error"] == "access_denied" and page.fields["state"] == flow["state"]
    before = token_posts(ms)
    result = app.acquire_token_by_auth_code_flow(flow, page.fields)
    assert result["error"] == "access_denied"
    assert token_posts(ms) == before  # msal returns the auth error without calling /token


def test_msal_interactive_sign_in_with_a_fake_browser(ms, http, monkeypatch):
    """What the app's sign-in does: acquire_token_interactive + the loopback listener (form_post only)."""
    monkeypatch.setattr(webbrowser, "open", lambda *a, **k: False)
    app = ms.msal_app(http_client=http)
    result = app.acquire_token_interactive(SCOPES, timeout=20, auth_uri_callback=ms.identity.browser_callback())
    assert "access_token" in result, result
    [visit] = ms.identity.join_browsers()
    assert visit.error is None and visit.delivery_status == 200
    assert visit.action.startswith("http://localhost:")  # msal's redirect_uri; the listener binds 127.0.0.1
    assert visit.delivered_to.startswith("http://127.0.0.1:")
    assert ms.identity.last_authorization().response_mode == "form_post"
    assert app.get_accounts()[0]["username"] == "bob@example.com"


def test_revoked_and_interaction_required(ms, http):
    app = ms.msal_app(http_client=http)
    rt = ms.identity.issue_tokens()["refresh_token"]
    assert ms.identity.revoke(rt)
    result = app.acquire_token_by_refresh_token(rt, scopes=SCOPES)
    assert result["error"] == "invalid_grant" and result["suberror"] == "bad_token"

    rt2 = ms.identity.issue_tokens()["refresh_token"]
    ms.identity.require_interaction()
    result = app.acquire_token_by_refresh_token(rt2, scopes=SCOPES)
    assert result["error"] == "interaction_required" and result["suberror"] == "basic_action"
    assert ms.identity.refresh_token_state(rt2) == "active"  # not consumed
    ms.identity.clear_interaction()
    with ms.http_session() as other_http:  # a fresh app: the 400 above is cached in `app` for 60 s
        assert "access_token" in ms.msal_app(http_client=other_http).acquire_token_by_refresh_token(rt2, SCOPES)

    assert ms.identity.revoke_all() >= 1
    with ms.http_session() as other_http:
        rt3 = ms.identity.rotations[-1][1]
        assert ms.msal_app(http_client=other_http).acquire_token_by_refresh_token(rt3, SCOPES)["error"] == (
            "invalid_grant"
        )


def test_token_endpoint_throttling_is_cached_by_msal(ms, http):
    rt = ms.identity.issue_tokens()["refresh_token"]
    app = ms.msal_app(http_client=http)
    ms.identity.throttle_token_endpoint(status=429, retry_after=30, times=1)
    before = token_posts(ms)
    first = app.acquire_token_by_refresh_token(rt, scopes=SCOPES)
    assert first["error"] == "temporarily_unavailable"
    assert token_posts(ms) == before + 1
    # msal keeps the 429 for Retry-After seconds: the retry is answered from its cache, not the server ...
    second = app.acquire_token_by_refresh_token(rt, scopes=SCOPES)
    assert second["error"] == "temporarily_unavailable"
    assert token_posts(ms) == before + 1
    # ... and the RT is still good for anyone who does reach the server.
    assert ms.identity.refresh_token_state(rt) == "active"
    with ms.http_session() as other_http:
        assert "access_token" in ms.msal_app(http_client=other_http).acquire_token_by_refresh_token(rt, SCOPES)


def test_token_endpoint_5xx_raises_in_msal_and_is_cached_too(ms, http):
    rt = ms.identity.issue_tokens()["refresh_token"]
    app = ms.msal_app(http_client=http)
    ms.identity.throttle_token_endpoint(status=503, retry_after=None, times=1)
    before = token_posts(ms)
    # Observed: a 5xx from /token is not returned as a dict: msal raises MsalServiceError("HTTP Error: 503") ...
    with pytest.raises(msal.exceptions.MsalServiceError, match="503"):
        app.acquire_token_by_refresh_token(rt, scopes=SCOPES)
    # ... and, even without Retry-After, the same request is answered from msal's cache (60 s for a PCA).
    with pytest.raises(msal.exceptions.MsalServiceError, match="503"):
        app.acquire_token_by_refresh_token(rt, scopes=SCOPES)
    assert token_posts(ms) == before + 1
    # A dropped connection surfaces as requests' ConnectionError, uncaught by msal.
    ms.identity.faults.add("POST", r"/token", drop="before-response")
    with pytest.raises(requests.exceptions.ConnectionError):
        app.acquire_token_by_refresh_token(rt, scopes=["User.Read"])
    assert ms.identity.refresh_token_state(rt) == "active"


# ---------------------------------------------------------------------------------------------------------------
# Graph through httpx
# ---------------------------------------------------------------------------------------------------------------
def test_me_drive_and_bearer_checks(ms):
    token = ms.identity.issue_tokens()["access_token"]

    async def scenario():
        async with graph_client(ms, token) as graph, graph_client(ms) as anonymous:
            me = (await graph.get("/me")).json()
            assert me["userPrincipalName"] == "bob@example.com" and me["mail"] == "bob@example.com"
            assert me["displayName"] == "Bob Example" and me["id"]
            drive = (await graph.get("/me/drive")).json()
            assert drive["driveType"] == "personal" and drive["id"] == me["id"]
            quota = drive["quota"]
            assert quota["used"] == 0 and quota["remaining"] == quota["total"] and quota["state"] == "normal"
            approot = (await graph.get("/me/drive/special/approot")).json()
            assert approot["name"] == "Kite" and approot["specialFolder"] == {"name": "approot"}
            assert approot["parentReference"]["path"] == "/drive/root:/Apps"

            missing = await anonymous.get("/me")
            assert missing.status_code == 401
            assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"
            assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
            ms.identity.expire_access_tokens()
            expired = await graph.get("/me/drive")
            assert expired.status_code == 401
            assert expired.json()["error"]["message"] == "Access token has expired or is not yet valid."

    run(scenario())


def test_app_folder_scope_cannot_reach_the_rest_of_the_drive(ms):
    token = ms.identity.issue_tokens(scopes=["Files.ReadWrite.AppFolder", "offline_access"])["access_token"]

    async def scenario():
        async with graph_client(ms, token) as graph:
            assert (await graph.get("/me/drive/special/approot/children")).status_code == 200
            denied = await graph.get("/me/drive/root/children")
            assert denied.status_code == 403 and denied.json()["error"]["code"] == "accessDenied"
            assert (await graph.put("/me/drive/root:/outside.txt:/content", content=b"x")).status_code == 403
            assert (await graph.get("/me")).status_code == 403  # no User.Read
            assert (await graph.get("/me/drive/root:/Apps/Kite")).json()["name"] == "Kite"

    run(scenario())


def test_upload_session_in_320k_fragments(ms):
    token = ms.identity.issue_tokens()["access_token"]
    data = secrets.token_bytes(3 * FRAGMENT_UNIT + 1234)
    fragment = 2 * FRAGMENT_UNIT

    async def scenario():
        async with graph_client(ms, token) as graph, bare_client() as up:
            created = await graph.post(
                "/me/drive/special/approot:/docs/big.bin:/createUploadSession",
                json={"item": {"@microsoft.graph.conflictBehavior": "fail", "name": "big.bin"}, "deferCommit": False},
            )
            assert created.status_code == 200, created.text
            session = created.json()
            assert session["nextExpectedRanges"] == ["0-"]
            url = session["uploadUrl"]
            assert url.startswith(ms.graph.base_url + "/up/") and "/v1.0/" not in url
            answers = []
            for start in range(0, len(data), fragment):
                chunk = data[start : start + fragment]
                headers = {"Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"}
                answers.append(await up.put(url, content=chunk, headers=headers))
            assert [a.status_code for a in answers] == [202, 201]
            assert answers[0].json()["nextExpectedRanges"] == [f"{fragment}-"]
            item = answers[1].json()
            assert item["name"] == "big.bin" and item["size"] == len(data) and isinstance(item["size"], int)
            assert item["file"]["hashes"]["quickXorHash"] == quick_xor_hash(data)
            assert item["parentReference"]["path"] == "/drive/root:/Apps/Kite/docs"
            assert ms.graph.item_bytes(item["id"]) == data
            assert (await up.get(url)).status_code == 404  # the session is gone once committed
            listed = (await graph.get(f"/me/drive/items/{item['id']}")).json()
            assert listed["file"]["hashes"]["quickXorHash"] == quick_xor_hash(data)

    run(scenario())
    [session] = ms.graph.sessions
    assert session.state == "completed" and [f[2] for f in session.fragments] == [202, 201]
    assert [i.name for i in ms.graph.items_named("docs")] == ["docs"]


def test_upload_url_refuses_authorization_and_bad_fragments(ms):
    token = ms.identity.issue_tokens()["access_token"]
    data = secrets.token_bytes(2 * FRAGMENT_UNIT + 10)

    async def scenario():
        async with graph_client(ms, token) as graph, bare_client() as up:
            created = await graph.post("/me/drive/special/approot:/a.bin:/createUploadSession", json={})
            url = created.json()["uploadUrl"]
            total = len(data)

            async def put(first: int, chunk: bytes, **headers):
                headers = {"Content-Range": f"bytes {first}-{first + len(chunk) - 1}/{total}", **headers}
                return await up.put(url, content=chunk, headers=headers)

            # Authorization on the uploadUrl: 401, even though the token itself is valid.
            leaked = await graph.put(
                url, content=data[:FRAGMENT_UNIT], headers={"Content-Range": f"bytes 0-{FRAGMENT_UNIT - 1}/{total}"}
            )
            assert leaked.status_code == 401 and leaked.request.headers["Authorization"].startswith("Bearer ")
            # Out of order (a gap at the start): 416 invalidRange / fragmentOutOfOrder.
            gap = await put(FRAGMENT_UNIT, data[FRAGMENT_UNIT : 2 * FRAGMENT_UNIT])
            assert gap.status_code == 416
            assert gap.json()["error"]["code"] == "invalidRange"
            assert gap.json()["error"]["innererror"]["code"] == "fragmentOutOfOrder"
            # Not a multiple of 320 KiB (and not the last fragment): refused.
            odd = await put(0, data[:1000])
            assert odd.status_code == 400 and odd.json()["error"]["innererror"]["code"] == "invalidFragmentSize"
            # Declared range longer than the body.
            short = await up.put(url, content=b"abc", headers={"Content-Range": f"bytes 0-9/{total}"})
            assert short.status_code == 400
            assert short.json()["error"]["innererror"]["code"] == "fragmentLengthMismatch"
            # A good fragment, then the same one again: 416 fragmentOverlap.
            assert (await put(0, data[:FRAGMENT_UNIT])).status_code == 202
            again = await put(0, data[:FRAGMENT_UNIT])
            assert again.status_code == 416 and again.json()["error"]["innererror"]["code"] == "fragmentOverlap"
            # TOTAL must not change.
            other_total = await up.put(
                url,
                content=data[FRAGMENT_UNIT : 2 * FRAGMENT_UNIT],
                headers={"Content-Range": f"bytes {FRAGMENT_UNIT}-{2 * FRAGMENT_UNIT - 1}/{total + 1}"},
            )
            assert other_total.status_code == 400
            status = (await up.get(url)).json()
            assert status["nextExpectedRanges"] == [f"{FRAGMENT_UNIT}-"]
            # Cancel: 204, then the session is gone.
            assert (await up.delete(url)).status_code == 204
            assert (await put(FRAGMENT_UNIT, data[FRAGMENT_UNIT : 2 * FRAGMENT_UNIT])).status_code == 404

    run(scenario())
    assert ms.graph.sessions[0].authorization_seen


def test_resume_after_a_drop_mid_request(ms):
    token = ms.identity.issue_tokens()["access_token"]
    data = secrets.token_bytes(3 * FRAGMENT_UNIT + 77)
    # The second fragment PUT loses its connection half-way through the body.
    ms.graph.faults.add("PUT", r"^/up/", drop="mid-request", after=1)

    async def scenario():
        async with graph_client(ms, token) as graph, bare_client() as up:
            created = await graph.post("/me/drive/special/approot:/resume.bin:/createUploadSession", json={})
            url = created.json()["uploadUrl"]

            async def put(first: int, size: int):
                chunk = data[first : first + size]
                headers = {"Content-Range": f"bytes {first}-{first + len(chunk) - 1}/{len(data)}"}
                return await up.put(url, content=chunk, headers=headers)

            assert (await put(0, FRAGMENT_UNIT)).status_code == 202
            with pytest.raises(httpx.TransportError):
                await put(FRAGMENT_UNIT, FRAGMENT_UNIT)
            status = (await up.get(url)).json()
            assert status["nextExpectedRanges"] == [f"{FRAGMENT_UNIT}-"]
            offset = int(status["nextExpectedRanges"][0].split("-")[0])
            answer = await put(offset, len(data) - offset)  # 2*320 KiB + 77: the last fragment may be any size
            assert answer.status_code == 201, answer.text
            assert answer.json()["file"]["hashes"]["quickXorHash"] == quick_xor_hash(data)

    run(scenario())
    assert ms.graph.item_bytes(ms.graph.items_named("resume.bin")[0].id) == data


def test_expired_session_is_404(ms):
    token = ms.identity.issue_tokens()["access_token"]

    async def scenario():
        async with graph_client(ms, token) as graph, bare_client() as up:
            url = (await graph.post("/me/drive/special/approot:/x.bin:/createUploadSession", json={})).json()[
                "uploadUrl"
            ]
            ms.graph.expire_session(url)
            gone = await up.put(url, content=b"abc", headers={"Content-Range": "bytes 0-2/3"})
            assert gone.status_code == 404 and gone.json()["error"]["innererror"]["code"] == "uploadSessionNotFound"

    run(scenario())


def test_download_redirects_to_the_other_port_with_range(ms):
    token = ms.identity.issue_tokens()["access_token"]
    data = bytes(range(256)) * 40
    item = ms.graph.add_item("notes/report.pdf", data)

    async def scenario():
        async with graph_client(ms, token) as graph:
            redirect = await graph.get(f"/me/drive/items/{item.id}/content")
            assert redirect.status_code == 302  # httpx does not follow redirects unless asked
            location = redirect.headers["Location"]
            assert location.startswith(ms.graph.download_base_url + "/")
            assert httpx.URL(location).port != httpx.URL(ms.graph.base_url).port

            ranged = await graph.get(
                f"/me/drive/items/{item.id}/content", headers={"Range": "bytes=10-19"}, follow_redirects=True
            )
            assert ranged.status_code == 206 and ranged.content == data[10:20]
            assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
            # httpx dropped the bearer on the cross-origin redirect, and re-sent Range.
            last = ms.graph.download_requests[-1]
            assert last.authorization is False and last.range == "bytes=10-19" and last.status == 206

            async with bare_client() as plain:
                whole = await plain.get(location)
                assert whole.status_code == 200 and whole.content == data
                tail = await plain.get(location, headers={"Range": f"bytes={len(data) - 5}-"})
                assert tail.content == data[-5:]
                beyond = await plain.get(location, headers={"Range": f"bytes={len(data)}-"})
                assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(data)}"
                # The log records a client that does leak its token to the download host.
                await plain.get(location, headers={"Authorization": f"Bearer {token}"})
                assert ms.graph.download_requests[-1].authorization is True
                ms.graph.expire_download_urls()
                assert (await plain.get(location)).status_code == 401

            by_path = await graph.get("/me/drive/special/approot:/notes/report.pdf:/content", follow_redirects=True)
            assert by_path.content == data

    run(scenario())


def test_download_cut_mid_body_then_resumed_with_range(ms):
    data = secrets.token_bytes(200_000)
    item = ms.graph.add_item("big.bin", data)
    location = ms.graph.download_url(ms.graph.drive(), item)
    ms.graph.cut_next_download(after_bytes=70_000)

    async def scenario():
        received = bytearray()
        async with bare_client() as plain:
            with pytest.raises(httpx.RemoteProtocolError):
                async with plain.stream("GET", location) as response:
                    assert response.headers["Content-Length"] == str(len(data))
                    async for chunk in response.aiter_bytes():
                        received += chunk
            assert 0 < len(received) <= 70_000
            rest = await plain.get(location, headers={"Range": f"bytes={len(received)}-"})
            assert rest.status_code == 206
            received += rest.content
        assert bytes(received) == data

    run(scenario())


def test_children_paging_select_and_path_addressing(ms):
    token = ms.identity.issue_tokens()["access_token"]
    for name in ("e.txt", "b.txt", "a.txt", "d.txt", "c.txt"):
        ms.graph.add_item(f"box/{name}", name.encode() * 3)
    box = ms.graph.items_named("box")[0]

    async def scenario():
        async with graph_client(ms, token) as graph:
            names, pages = [], 0
            url = f"/me/drive/items/{box.id}/children?$top=2"
            while url:
                page = (await graph.get(url)).json()
                pages += 1
                for entry in page["value"]:
                    names.append(entry["name"])
                    assert entry["size"] == 15 and isinstance(entry["size"], int)
                    assert entry["file"]["hashes"]["quickXorHash"] == quick_xor_hash(entry["name"].encode() * 3)
                    assert entry["parentReference"]["id"] == box.id
                url = page.get("@odata.nextLink")
                if url:
                    assert url.startswith(ms.graph.url + "/") and "$skiptoken=" in url and "$top=2" in url
            assert (names, pages) == (["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"], 3)

            selected = (await graph.get("/me/drive/special/approot/children", params={"$select": "id,name"})).json()
            assert selected["value"] == [{"id": box.id, "name": "box"}]
            everything = (await graph.get("/me/drive/special/approot:/box:/children")).json()
            assert len(everything["value"]) == 5 and "@odata.nextLink" not in everything

            by_path = (await graph.get("/me/drive/special/approot:/box/c.txt:")).json()
            by_root_path = (await graph.get("/me/drive/root:/Apps/Kite/box/C.TXT")).json()  # case-insensitive
            by_parent = (await graph.get(f"/me/drive/items/{box.id}:/c.txt:")).json()
            assert by_path["id"] == by_root_path["id"] == by_parent["id"]
            missing = await graph.get("/me/drive/special/approot:/box/zzz.txt:")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "itemNotFound"

            assert (await graph.delete(f"/me/drive/items/{by_path['id']}")).status_code == 204
            gone = await graph.delete(f"/me/drive/items/{by_path['id']}")
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "itemNotFound"

    run(scenario())
    assert sorted(i.name for i in ms.graph.all_items() if i.parent_id == box.id) == ["a.txt", "b.txt", "d.txt", "e.txt"]


def test_simple_upload_and_conflicts(ms):
    token = ms.identity.issue_tokens()["access_token"]

    async def scenario():
        async with graph_client(ms, token) as graph:
            first = await graph.put("/me/drive/special/approot:/in/notes.txt:/content", content=b"one")
            assert first.status_code == 201 and first.json()["file"]["mimeType"] == "text/plain"
            replaced = await graph.put("/me/drive/special/approot:/in/notes.txt:/content", content=b"two!")
            assert replaced.status_code == 200 and replaced.json()["id"] == first.json()["id"]
            assert replaced.json()["size"] == 4

            fail = await graph.put(
                "/me/drive/special/approot:/in/notes.txt:/content",
                params={"@microsoft.graph.conflictBehavior": "fail"},
                content=b"three",
            )
            assert fail.status_code == 409 and fail.json()["error"]["code"] == "nameAlreadyExists"
            renamed = await graph.put(
                "/me/drive/special/approot:/in/Notes.txt:/content",
                params={"@microsoft.graph.conflictBehavior": "rename"},
                content=b"four",
            )
            assert renamed.status_code == 201 and renamed.json()["name"] == "Notes 1.txt"

            folder_id = first.json()["parentReference"]["id"]
            by_parent = await graph.put(f"/me/drive/items/{folder_id}:/other.txt:/content", content=b"x")
            assert by_parent.status_code == 201

            session_conflict = await graph.post(
                "/me/drive/special/approot:/in/notes.txt:/createUploadSession",
                json={"item": {"@microsoft.graph.conflictBehavior": "fail"}},
            )
            assert session_conflict.status_code == 409
            assert session_conflict.json()["error"]["code"] == "nameAlreadyExists"

            # conflict=fail is checked again when the last fragment commits
            url = (
                await graph.post(
                    "/me/drive/special/approot:/in/late.txt:/createUploadSession",
                    json={"item": {"@microsoft.graph.conflictBehavior": "fail"}},
                )
            ).json()["uploadUrl"]
            ms.graph.add_item("in/late.txt", b"someone else")
            async with bare_client() as up:
                late = await up.put(url, content=b"mine", headers={"Content-Range": "bytes 0-3/4"})
            assert late.status_code == 409 and late.json()["error"]["code"] == "nameAlreadyExists"

    run(scenario())
    assert ms.graph.item_bytes(ms.graph.items_named("notes.txt")[0].id) == b"two!"


def test_folders_replace_by_id_deferred_commit_and_drive_addressing(ms):
    token = ms.identity.issue_tokens()["access_token"]
    existing = ms.graph.add_item("doc.txt", b"old")

    async def scenario():
        async with graph_client(ms, token) as graph, bare_client() as up:
            drive_id = (await graph.get("/me/drive")).json()["id"]
            approot = (await graph.get(f"/drives/{drive_id}/special/approot")).json()
            made = await graph.post(
                f"/me/drive/items/{approot['id']}/children",
                json={"name": "Sub", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"},
            )
            assert made.status_code == 201 and "folder" in made.json()
            again = await graph.post(f"/me/drive/items/{approot['id']}/children", json={"name": "sub", "folder": {}})
            assert again.status_code == 409

            replaced = await graph.put(f"/me/drive/items/{existing.id}/content", content=b"newer")
            assert replaced.status_code == 200 and replaced.json()["size"] == 5

            # createUploadSession on an item id replaces it; fileSystemInfo sets the client-side times.
            created = await graph.post(
                f"/me/drive/items/{existing.id}/createUploadSession",
                json={
                    "item": {"fileSystemInfo": {"lastModifiedDateTime": "2021-05-06T07:08:09Z"}},
                    "deferCommit": True,
                },
            )
            url = created.json()["uploadUrl"]
            held = await up.put(url, content=b"newest", headers={"Content-Range": "bytes 0-5/6"})
            assert held.status_code == 202 and held.json()["nextExpectedRanges"] == []
            assert ms.graph.item_bytes(existing.id) == b"newer"  # not committed yet
            committed = await up.post(url, content=b"")
            assert committed.status_code == 200, committed.text
            item = committed.json()
            assert item["id"] == existing.id and item["fileSystemInfo"]["lastModifiedDateTime"].startswith(
                "2021-05-06T07:08:09"
            )
            newest_first = await graph.get("/me/drive/special/approot/children?$orderby=lastModifiedDateTime desc")
            assert newest_first.json()["value"][0]["id"] == existing.id
            other_drive = await graph.get("/drives/0000000000000000/root")
            assert other_drive.status_code == 404

    run(scenario())
    assert ms.graph.item_bytes(existing.id) == b"newest"
    assert [i.name for i in ms.graph.items_named("Sub")] == ["Sub"]


def test_quota_limit_gives_507(ms):
    token = ms.identity.issue_tokens()["access_token"]
    ms.graph.set_quota(1000)

    async def scenario():
        async with graph_client(ms, token) as graph, bare_client() as up:
            declared = await graph.post(
                "/me/drive/special/approot:/big.bin:/createUploadSession",
                json={"item": {"name": "big.bin", "fileSize": 5000}},
            )
            assert declared.status_code == 507 and declared.json()["error"]["code"] == "quotaLimitReached"
            simple = await graph.put("/me/drive/special/approot:/big.bin:/content", content=b"x" * 1001)
            assert simple.status_code == 507
            url = (await graph.post("/me/drive/special/approot:/big.bin:/createUploadSession", json={})).json()[
                "uploadUrl"
            ]
            undeclared = await up.put(url, content=b"x" * 1001, headers={"Content-Range": "bytes 0-1000/1001"})
            assert undeclared.status_code == 507
            quota = (await graph.get("/me/drive")).json()["quota"]
            assert quota == {**quota, "total": 1000, "used": 0, "remaining": 1000}

    run(scenario())


def test_throttling_fault_with_retry_after(ms):
    token = ms.identity.issue_tokens()["access_token"]
    ms.graph.throttle("GET", r"/children", status=429, retry_after=3)
    ms.graph.throttle("GET", r"^/v1\.0/me$", status=503, retry_after=1)

    async def scenario():
        async with graph_client(ms, token) as graph:
            throttled = await graph.get("/me/drive/special/approot/children")
            assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
            assert throttled.json()["error"]["code"] == "activityLimitReached"
            assert (await graph.get("/me/drive/special/approot/children")).status_code == 200
            unavailable = await graph.get("/me")
            assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "1"
            assert (await graph.get("/me")).status_code == 200

    run(scenario())


def test_runs_standalone_and_prints_the_environment():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.emulators.microsoft"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        exports = proc.stdout.readline().split()
        values = dict(pair.split("=", 1) for pair in exports[1:])
        access_token = proc.stdout.readline().strip().split("=", 1)[1]
        assert set(values) == {"KITE_GRAPH_URL", "KITE_MS_AUTHORITY", "KITE_CA_BUNDLE", "KITE_MS_CLIENT_ID"}
        with httpx.Client(trust_env=False, timeout=10) as client:
            me = client.get(values["KITE_GRAPH_URL"] + "/me", headers={"Authorization": f"Bearer {access_token}"})
            assert me.json()["userPrincipalName"] == "bob@example.com"
        with requests.Session() as session:
            session.trust_env = False
            session.verify = values["KITE_CA_BUNDLE"]
            doc = session.get(values["KITE_MS_AUTHORITY"] + "/v2.0/.well-known/openid-configuration", timeout=10)
            assert doc.json()["token_endpoint"].startswith(values["KITE_MS_AUTHORITY"])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0


def test_default_scopes_are_what_issue_tokens_grants(ms):
    tokens = ms.identity.issue_tokens()
    assert set(tokens["scope"].split()) == set(DEFAULT_SCOPES) - {"offline_access"}
    assert tokens["expires_in"] == 3600 and tokens["token_type"] == "Bearer"
    assert decode_b64url_json(tokens["client_info"])["uid"] == ms.directory.current_account.uid
    no_offline = ms.identity.issue_tokens(scopes=["User.Read", "openid"])
    assert "refresh_token" not in no_offline  # refresh tokens need offline_access, as in Entra
