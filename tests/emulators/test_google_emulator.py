"""The Google emulator, driven by the real client libraries the app uses, so we know they agree on the wire.

googleapiclient (``build_from_document`` with ``rootUrl`` rewritten, PROTOCOLS.md §1.5) over
``google_auth_httplib2.AuthorizedHttp(build_http())`` with google-auth ``Credentials``; google-auth-oauthlib's
``Flow`` for the browser sign-in, with the "browser" played by urllib (redirects not followed).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_auth_httplib2
import httplib2
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError, ResumableUploadError
from googleapiclient.http import MediaIoBaseDownload, MediaIoBaseUpload, build_http
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

from tests.emulators.google import (
    BACKEND_ERROR,
    DUPLICATE_ID_REASON,
    FOLDER_MIME,
    GOOGLE_DOC_MIME,
    RATE_LIMIT,
    USER_RATE_LIMIT,
    GoogleEmulator,
)

DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"
CHUNK = 256 * 1024
SIZE = 700 * 1024  # 716800: two whole chunks and a short last one


def payload(size: int, seed: int = 7) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@contextlib.contextmanager
def plain_http() -> Iterator[httplib2.Http]:
    """A fresh unauthenticated connection, closed afterwards (pytest turns leaked sockets into errors)."""
    http = build_http()
    try:
        yield http
    finally:
        http.close()


def reason(error: HttpError) -> str:
    return json.loads(error.content)["error"]["errors"][0]["reason"]


class Session:
    """What the backend will hold: credentials, an authorized httplib2 connection and the Drive service."""

    def __init__(self, google: GoogleEmulator, tokens: dict[str, Any]) -> None:
        self.credentials = Credentials(
            tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            token_uri=google.token_uri,
            client_id=tokens["client_id"],
            client_secret=tokens["client_secret"],
        )
        self.http = google_auth_httplib2.AuthorizedHttp(self.credentials, http=build_http())
        self.drive = build_from_document(google.discovery_document(), http=self.http)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def google() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        yield emulator


@pytest.fixture
def session(google: GoogleEmulator) -> Iterator[Session]:
    opened = Session(google, google.issue_tokens(scope=DRIVE_FILE))
    yield opened
    opened.close()


def upload_request(session: Session, data: bytes, chunksize: int = CHUNK, **body: Any) -> Any:
    media = MediaIoBaseUpload(io.BytesIO(data), mimetype="application/pdf", chunksize=chunksize, resumable=True)
    return session.drive.files().create(
        body={"name": "report.pdf", **body}, media_body=media, fields="id,name,size,md5Checksum"
    )


# -- resumable uploads ------------------------------------------------------------------------------------------
def test_resumable_upload_in_256k_chunks_ends_with_the_right_size_and_md5(
    google: GoogleEmulator, session: Session
) -> None:
    data = payload(SIZE)
    request = upload_request(session, data)
    progress, response = [], None
    while response is None:
        status, response = request.next_chunk()
        if status is not None:
            progress.append(status.resumable_progress)

    assert progress == [CHUNK, 2 * CHUNK]
    assert response["size"] == str(SIZE)  # a string, as in Drive v3
    assert response["md5Checksum"] == md5(data)
    assert set(response) == {"id", "name", "size", "md5Checksum"}
    assert google.file_bytes(response["id"]) == data
    puts = [r.headers.get("content-range") for r in google.requests if r.method == "PUT"]
    assert puts == ["bytes 0-262143/716800", "bytes 262144-524287/716800", "bytes 524288-716799/716800"]
    initiation = next(r for r in google.requests if r.method == "POST" and "uploadType=resumable" in r.path)
    assert initiation.status == 200
    assert initiation.headers["x-upload-content-length"] == str(SIZE)
    assert google.sessions == []


def test_chunks_that_are_not_whole_256k_units_are_trimmed_and_the_client_follows_the_range(
    google: GoogleEmulator, session: Session
) -> None:
    data = payload(SIZE, seed=3)
    request = upload_request(session, data, chunksize=300 * 1024)
    progress, response = [], None
    while response is None:
        status, response = request.next_chunk()
        if status is not None:
            progress.append(status.resumable_progress)

    assert progress == [CHUNK, 2 * CHUNK]  # the server kept 256 KiB of each 300 KiB chunk
    assert google.file_bytes(response["id"]) == data


def test_a_503_on_a_chunk_is_resumed_by_a_status_query(google: GoogleEmulator, session: Session) -> None:
    data = payload(SIZE, seed=11)
    google.faults.add("PUT", r"upload_id=", status=503, json=BACKEND_ERROR, after=1)
    request = upload_request(session, data)
    failures, response = [], None
    while response is None:
        try:
            _, response = request.next_chunk(num_retries=0)  # PROTOCOLS gotcha 2: no library retries of chunks
        except HttpError as exc:
            failures.append((exc.status_code, reason(exc)))

    assert failures == [(503, "backendError")]
    assert google.file_bytes(response["id"]) == data
    assert response["md5Checksum"] == md5(data)
    ranges = [r.headers.get("content-range") for r in google.requests if r.method == "PUT"]
    assert ranges == [
        "bytes 0-262143/716800",
        "bytes 262144-524287/716800",  # answered 503 (its bytes were not kept)
        "bytes */716800",  # the status query that next_chunk() sends after an error
        "bytes 262144-524287/716800",
        "bytes 524288-716799/716800",
    ]


def test_status_query_before_any_bytes_has_no_range_and_after_completion_returns_the_file(
    google: GoogleEmulator, session: Session
) -> None:
    http = session.http
    start, _ = http.request(
        google.root_url + "upload/drive/v3/files?uploadType=resumable&fields=id,size",
        "POST",
        body=json.dumps({"name": "tiny.bin"}),
        headers={"content-type": "application/json", "x-upload-content-length": "3"},
    )
    assert start.status == 200
    location = start["location"]
    assert location.startswith(google.base_url + "/upload/drive/v3/files?") and "upload_id=" in location

    empty, _ = http.request(location, "PUT", headers={"content-range": "bytes */3", "content-length": "0"})
    assert empty.status == 308 and "range" not in empty

    done, body = http.request(location, "PUT", body=b"abc", headers={"content-range": "bytes 0-2/3"})
    assert done.status == 200
    again, body_again = http.request(location, "PUT", headers={"content-range": "bytes */3", "content-length": "0"})
    assert again.status == 200
    assert json.loads(body) == json.loads(body_again) == {"id": json.loads(body)["id"], "size": "3"}


def test_an_expired_session_answers_404(google: GoogleEmulator, session: Session) -> None:
    request = upload_request(session, payload(SIZE))
    status, _ = request.next_chunk()
    assert status.resumable_progress == CHUNK
    assert [s.uri for s in google.sessions] == [request.resumable_uri]

    google.expire_session(request.resumable_uri)
    with pytest.raises(HttpError) as caught:
        request.next_chunk(num_retries=0)

    assert caught.value.status_code == 404
    assert google.sessions == []
    assert google.files_named("report.pdf") == []


def test_sessions_expire_after_a_week(google: GoogleEmulator, session: Session) -> None:
    request = upload_request(session, payload(SIZE))
    request.next_chunk()
    google.advance(7 * 24 * 3600 + 1)
    session.credentials.token = google.issue_tokens(scope=DRIVE_FILE)["access_token"]  # the old one expired too

    with pytest.raises(HttpError) as caught:
        request.next_chunk(num_retries=0)
    assert caught.value.status_code == 404


# -- tokens -----------------------------------------------------------------------------------------------------
def test_an_expired_access_token_is_refreshed_transparently(google: GoogleEmulator, session: Session) -> None:
    first = session.credentials.token
    session.drive.files().list(pageSize=10).execute()

    google.expire_access_tokens()
    listing = session.drive.files().list(pageSize=10).execute()

    assert listing["kind"] == "drive#fileList"
    assert session.credentials.token != first
    assert [(r.method, r.path.split("?")[0], r.status) for r in google.requests[-3:]] == [
        ("GET", "/drive/v3/files", 401),
        ("POST", "/token", 200),
        ("GET", "/drive/v3/files", 200),
    ]
    refresh = google.token_requests[-1]
    assert refresh.grant_type == "refresh_token" and not refresh.basic_auth  # google-auth sends the secret in the body
    unauthorized = next(r for r in google.requests if r.status == 401)
    assert unauthorized.path.startswith("/drive/v3/files")


def test_a_401_carries_googles_error_json(google: GoogleEmulator, session: Session) -> None:
    with plain_http() as http:
        response, content = http.request(google.root_url + "drive/v3/files", "GET")
    assert response.status == 401
    error = json.loads(content)["error"]
    assert error["code"] == 401
    assert error["errors"][0]["reason"] == "authError"
    assert error["errors"][0]["location"] == "Authorization"


def test_a_revoked_refresh_token_gives_invalid_grant(google: GoogleEmulator, session: Session) -> None:
    google.revoke(session.credentials.refresh_token)

    with pytest.raises(RefreshError) as direct, plain_http() as http:
        session.credentials.refresh(google_auth_httplib2.Request(http))
    assert direct.value.args[1]["error"] == "invalid_grant"
    assert direct.value.args[1]["error_description"] == "Token has been expired or revoked."

    with pytest.raises(RefreshError) as through_drive:  # the revoked grant's access token is dead too: 401, refresh
        session.drive.files().list().execute()
    assert through_drive.value.args[1]["error"] == "invalid_grant"


def test_refresh_with_a_wrong_client_secret_is_invalid_client(google: GoogleEmulator) -> None:
    tokens = google.issue_tokens()
    credentials = Credentials(
        None, refresh_token=tokens["refresh_token"], token_uri=google.token_uri, client_id=tokens["client_id"],
        client_secret="wrong",
    )  # fmt: skip
    with pytest.raises(RefreshError) as caught, plain_http() as http:
        credentials.refresh(google_auth_httplib2.Request(http))
    assert caught.value.args[1]["error"] == "invalid_client"


# -- ids, listing, metadata ---------------------------------------------------------------------------------------
def test_create_with_a_generated_id_twice_is_409_and_leaves_one_file(google: GoogleEmulator, session: Session) -> None:
    generated = session.drive.files().generateIds(count=2, space="drive", type="files").execute()
    assert generated["kind"] == "drive#generatedIds" and generated["space"] == "drive"
    file_id = generated["ids"][0]

    def create() -> dict[str, Any]:
        media = MediaIoBaseUpload(io.BytesIO(b"%PDF-1.7 x"), mimetype="application/pdf")
        body = {"id": file_id, "name": "once.pdf"}
        return session.drive.files().create(body=body, media_body=media, fields="id").execute()

    assert create() == {"id": file_id}
    with pytest.raises(HttpError) as caught:
        create()

    assert caught.value.status_code == 409
    error = json.loads(caught.value.content)["error"]
    assert error["message"] == "A file already exists with the provided ID."
    assert error["errors"][0]["reason"] == DUPLICATE_ID_REASON
    assert [f.id for f in google.files_named("once.pdf")] == [file_id]


def test_a_create_whose_answer_was_lost_is_resent_by_httplib2_and_lands_on_409(
    google: GoogleEmulator, session: Session
) -> None:
    """The server made the file, then the connection closed without a status line. httplib2 re-sends the POST
    by itself (a BadStatusLine on the first try is retried "regardless"), so the caller's first answer is 409."""
    file_id = session.drive.files().generateIds(count=1).execute()["ids"][0]
    google.lose_response("POST", r"^/upload/drive/v3/files\?")
    media = MediaIoBaseUpload(io.BytesIO(b"%PDF-1.7 y"), mimetype="application/pdf")

    with pytest.raises(HttpError) as caught:
        session.drive.files().create(body={"id": file_id, "name": "lost.pdf"}, media_body=media).execute()

    assert caught.value.status_code == 409 and reason(caught.value) == DUPLICATE_ID_REASON
    assert [r.status for r in google.requests if r.method == "POST"] == [-200, 409]
    assert [f.id for f in google.files_named("lost.pdf")] == [file_id]


def test_an_id_not_issued_by_generate_ids_is_refused(google: GoogleEmulator, session: Session) -> None:
    with pytest.raises(HttpError) as caught:
        session.drive.files().create(body={"id": "1made-up-id-000000000000000000000", "name": "x"}).execute()
    assert caught.value.status_code == 400
    assert google.files_named("x") == []


def test_list_pages_of_two_over_five_files(google: GoogleEmulator, session: Session) -> None:
    folder = google.add_file("Kite", None)
    for index in range(5):
        google.add_file(f"doc-{index}.pdf", b"%PDF" * index, parents=[folder.id])
    google.add_file("elsewhere.pdf", b"x")

    names, pages = [], 0
    request = session.drive.files().list(
        q=f"'{folder.id}' in parents and trashed = false", pageSize=2, fields="nextPageToken, files(id,name)"
    )
    while request is not None:
        page = request.execute()
        pages += 1
        assert len(page["files"]) <= 2
        assert all(set(item) == {"id", "name"} for item in page["files"])
        names += [item["name"] for item in page["files"]]
        request = session.drive.files().list_next(request, page)

    assert pages == 3
    assert sorted(names) == [f"doc-{index}.pdf" for index in range(5)]


def test_list_query_by_name_and_mime_type_and_ordering(google: GoogleEmulator, session: Session) -> None:
    google.add_file("b.txt", b"2", mime_type="text/plain")
    google.add_file("a.txt", b"1", mime_type="text/plain")
    google.add_file("Folder", None)
    files = session.drive.files()

    named = files.list(q="name = 'a.txt' and trashed = false", fields="files(name,size)").execute()
    assert named["files"] == [{"name": "a.txt", "size": "1"}]
    folders = files.list(q=f"mimeType = '{FOLDER_MIME}'").execute()
    assert [f["name"] for f in folders["files"]] == ["Folder"]
    ordered = files.list(q="mimeType != 'application/vnd.google-apps.folder'", orderBy="name").execute()
    assert [f["name"] for f in ordered["files"]] == ["a.txt", "b.txt"]
    assert set(ordered["files"][0]) == {"kind", "id", "name", "mimeType"}  # the default fields

    with pytest.raises(HttpError) as bad_query:
        files.list(q="name === 'a'").execute()
    assert bad_query.value.status_code == 400 and reason(bad_query.value) == "invalid"
    with pytest.raises(HttpError) as bad_fields:
        files.list(fields="files(bogus)").execute()
    assert bad_fields.value.status_code == 400 and reason(bad_fields.value) == "invalidParameter"


def test_files_get_metadata_with_fields(google: GoogleEmulator, session: Session) -> None:
    added = google.add_file("a.pdf", b"12345", mime_type="application/pdf")
    meta = session.drive.files().get(fileId=added.id, fields="size,md5Checksum,mimeType,parents,modifiedTime").execute()
    assert meta["size"] == "5"
    assert meta["md5Checksum"] == md5(b"12345")
    assert meta["parents"] == [google.drive_root()]
    assert meta["modifiedTime"].endswith("Z") and "T" in meta["modifiedTime"]
    with pytest.raises(HttpError) as caught:
        session.drive.files().get(fileId="1nope").execute()
    assert caught.value.status_code == 404
    assert json.loads(caught.value.content)["error"]["message"] == "File not found: 1nope."


def test_delete_is_204_empty_and_a_second_delete_is_404(google: GoogleEmulator, session: Session) -> None:
    added = google.add_file("gone.pdf", b"x")
    assert session.drive.files().delete(fileId=added.id).execute() == ""
    assert google.get_file(added.id) is None
    with pytest.raises(HttpError) as caught:
        session.drive.files().delete(fileId=added.id).execute()
    assert caught.value.status_code == 404 and reason(caught.value) == "notFound"


def test_folders_and_multipart_create(google: GoogleEmulator, session: Session) -> None:
    folder = session.drive.files().create(body={"name": "Kite", "mimeType": FOLDER_MIME}, fields="id").execute()
    media = MediaIoBaseUpload(io.BytesIO(b"hello world"), mimetype="text/plain")
    created = (
        session.drive.files()
        .create(
            body={"name": "note.txt", "parents": [folder["id"]]},
            media_body=media,
            fields="id,name,size,md5Checksum,mimeType,parents",
        )
        .execute()
    )

    assert created["size"] == "11" and created["md5Checksum"] == md5(b"hello world")
    assert created["mimeType"] == "text/plain" and created["parents"] == [folder["id"]]
    assert google.file_bytes(created["id"]) == b"hello world"
    assert any("uploadType=multipart" in r.path for r in google.requests)


def test_update_replaces_the_content(google: GoogleEmulator, session: Session) -> None:
    created = upload_request(session, payload(1000)).execute()
    media = MediaIoBaseUpload(io.BytesIO(b"new"), mimetype="application/pdf", resumable=True)
    updated = session.drive.files().update(fileId=created["id"], media_body=media, fields="size,md5Checksum").execute()
    assert updated == {"size": "3", "md5Checksum": md5(b"new")}
    assert google.file_bytes(created["id"]) == b"new"
    assert any(r.method == "PATCH" and r.path.startswith("/upload/drive/v3/files/") for r in google.requests)


# -- downloads ------------------------------------------------------------------------------------------------
def test_alt_media_with_range(google: GoogleEmulator, session: Session) -> None:
    data = payload(1000)
    added = google.add_file("r.bin", data)
    uri = session.drive.files().get_media(fileId=added.id).uri

    partial, body = session.http.request(uri, "GET", headers={"range": "bytes=100-199"})
    assert partial.status == 206
    assert partial["content-range"] == "bytes 100-199/1000"
    assert body == data[100:200]
    tail, body = session.http.request(uri, "GET", headers={"range": "bytes=-10"})
    assert (tail.status, body) == (206, data[-10:])
    beyond, _ = session.http.request(uri, "GET", headers={"range": "bytes=1000-"})
    assert beyond.status == 416 and beyond["content-range"] == "bytes */1000"

    target = io.BytesIO()
    download = MediaIoBaseDownload(target, session.drive.files().get_media(fileId=added.id), chunksize=300)
    done, chunks = False, 0
    while not done:
        _, done = download.next_chunk()
        chunks += 1
    assert target.getvalue() == data and chunks == 4


def test_a_docs_type_file_cannot_be_downloaded(google: GoogleEmulator, session: Session) -> None:
    doc = google.add_file("Notes", mime_type=GOOGLE_DOC_MIME)
    meta = session.drive.files().get(fileId=doc.id, fields="id,mimeType,size,md5Checksum").execute()
    assert meta == {"id": doc.id, "mimeType": GOOGLE_DOC_MIME}  # no size, no checksum

    with pytest.raises(HttpError) as caught:
        session.drive.files().get_media(fileId=doc.id).execute()
    assert caught.value.status_code == 403 and reason(caught.value) == "fileNotDownloadable"


# -- quota, throttling, scopes, accounts --------------------------------------------------------------------------
def test_quota_exceeded_is_403_storage_quota_exceeded(google: GoogleEmulator, session: Session) -> None:
    google.set_quota(1500)
    media = MediaIoBaseUpload(io.BytesIO(payload(2000)), mimetype="application/pdf")
    with pytest.raises(HttpError) as multipart:
        session.drive.files().create(body={"name": "big.pdf"}, media_body=media).execute()
    assert multipart.value.status_code == 403 and reason(multipart.value) == "storageQuotaExceeded"

    with pytest.raises(ResumableUploadError) as resumable:  # refused at initiation: the size is declared there
        upload_request(session, payload(2000)).next_chunk()
    assert resumable.value.status_code == 403 and reason(resumable.value) == "storageQuotaExceeded"
    assert google.all_files() == []

    fits = upload_request(session, payload(1000)).execute()
    assert fits["size"] == "1000"
    about = session.drive.about().get(fields="storageQuota").execute()
    assert about["storageQuota"]["limit"] == "1500" and about["storageQuota"]["usage"] == "1000"


def test_rate_limit_faults_reach_the_client(google: GoogleEmulator, session: Session) -> None:
    google.faults.add("GET", r"^/drive/v3/files\?", status=429, json=RATE_LIMIT, headers={"Retry-After": "7"})
    google.faults.add("GET", r"^/drive/v3/files\?", status=403, json=USER_RATE_LIMIT)

    with pytest.raises(HttpError) as too_many:
        session.drive.files().list().execute()
    assert too_many.value.status_code == 429 and too_many.value.resp["retry-after"] == "7"
    with pytest.raises(HttpError) as user_limit:
        session.drive.files().list().execute()
    assert user_limit.value.status_code == 403 and reason(user_limit.value) == "userRateLimitExceeded"
    assert session.drive.files().list().execute()["files"] == []


def test_drive_file_scope_sees_only_what_the_app_created(google: GoogleEmulator, session: Session) -> None:
    mine = google.add_file("mine.pdf", b"1")
    theirs = google.add_file("theirs.pdf", b"2", created_by=None)  # made by the user in the Drive web UI
    listed = session.drive.files().list().execute()["files"]
    assert [f["id"] for f in listed] == [mine.id]
    with pytest.raises(HttpError) as caught:
        session.drive.files().get(fileId=theirs.id).execute()
    assert caught.value.status_code == 404


def test_each_account_has_its_own_drive(google: GoogleEmulator, session: Session) -> None:
    google.add_file("alice.pdf", b"a")
    bob = Session(google, google.issue_tokens("bob@example.com", scope=DRIVE_FILE))
    try:
        assert bob.drive.files().list().execute()["files"] == []
        user = bob.drive.about().get(fields="user(emailAddress,displayName)").execute()["user"]
        assert user == {"emailAddress": "bob@example.com", "displayName": "Bob"}
    finally:
        bob.close()
    about = session.drive.about().get(fields="user").execute()
    assert about["user"]["emailAddress"] == "alice@example.com"
    with pytest.raises(HttpError) as no_fields:
        session.drive.about().get().execute()
    assert no_fields.value.status_code == 400 and reason(no_fields.value) == "required"


def test_app_data_folder_needs_the_appdata_scope(google: GoogleEmulator, session: Session) -> None:
    app = Session(google, google.issue_tokens(scope="https://www.googleapis.com/auth/drive.appdata"))
    try:
        body = {"name": "settings.json", "parents": ["appDataFolder"]}
        media = MediaIoBaseUpload(io.BytesIO(b"{}"), mimetype="application/json")
        created = app.drive.files().create(body=body, media_body=media, fields="id,spaces").execute()
        assert created["spaces"] == ["appDataFolder"]
        listed = app.drive.files().list(spaces="appDataFolder", fields="files(id)").execute()
        assert listed["files"] == [{"id": created["id"]}]
    finally:
        app.close()
    with pytest.raises(HttpError) as caught:
        session.drive.files().list(spaces="appDataFolder").execute()
    assert caught.value.status_code == 403
    assert session.drive.files().list().execute()["files"] == []  # not in the "drive" space either


def test_the_revoke_endpoint_ends_the_grant(google: GoogleEmulator, session: Session) -> None:
    with plain_http() as http:
        done, _ = http.request(f"{google.revoke_uri}?token={session.credentials.refresh_token}", "POST")
        again, content = http.request(f"{google.revoke_uri}?token={session.credentials.refresh_token}", "POST")
    assert done.status == 200
    assert again.status == 400 and json.loads(content)["error"] == "invalid_token"
    with pytest.raises(RefreshError):
        session.drive.files().list().execute()


# -- the browser sign-in (authorization code + PKCE) --------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def visit(url: str) -> tuple[int, str]:
    """Play the browser for one request: the status and the Location it was sent to (not followed)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Location", "")


@pytest.fixture
def flow(google: GoogleEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # PROTOCOLS gotcha 6: the emulator is plain http
    made = Flow.from_client_config(google.client_config(), scopes=[DRIVE_FILE], redirect_uri="http://127.0.0.1:1/")
    yield made
    made.oauth2session.close()


def authorize(flow: Flow, **kwargs: Any) -> dict[str, str]:
    url, state = flow.authorization_url(**kwargs)
    status, location = visit(url)
    assert status == 302 and location.startswith("http://127.0.0.1:1/?")
    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert answer["state"] == state
    return answer


def test_auth_code_flow_with_pkce(google: GoogleEmulator, flow: Flow) -> None:
    answer = authorize(flow, prompt="consent")
    assert answer["scope"] == DRIVE_FILE

    token = flow.fetch_token(code=answer["code"])

    assert token["scope"] == [DRIVE_FILE] and token["refresh_token"]
    seen = google.authorize_requests[-1]
    assert seen.params["code_challenge_method"] == "S256" and seen.params["access_type"] == "offline"
    assert flow.code_verifier not in seen.url
    exchange = google.token_requests[-1]
    assert exchange.grant_type == "authorization_code" and exchange.basic_auth
    assert exchange.params["code_verifier"] == flow.code_verifier
    credentials = flow.credentials
    assert credentials.token_uri == google.token_uri
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=build_http())
    try:
        drive = build_from_document(google.discovery_document(), http=http)
        assert drive.about().get(fields="user").execute()["user"]["emailAddress"] == "alice@example.com"
    finally:
        http.close()


def test_a_wrong_verifier_is_invalid_grant(flow: Flow) -> None:
    answer = authorize(flow)
    flow.code_verifier = "x" * 64
    with pytest.raises(InvalidGrantError):
        flow.fetch_token(code=answer["code"])


def test_a_replayed_code_is_invalid_grant(flow: Flow) -> None:
    answer = authorize(flow)
    flow.fetch_token(code=answer["code"])
    with pytest.raises(InvalidGrantError):
        flow.fetch_token(code=answer["code"])


def test_an_expired_code_is_invalid_grant(google: GoogleEmulator, flow: Flow) -> None:
    answer = authorize(flow)
    google.advance(61)
    with pytest.raises(InvalidGrantError):
        flow.fetch_token(code=answer["code"])


def test_a_refresh_token_comes_only_on_first_consent_or_with_prompt_consent(google: GoogleEmulator, flow: Flow) -> None:
    assert "refresh_token" in flow.fetch_token(code=authorize(flow)["code"])
    assert "refresh_token" not in flow.fetch_token(code=authorize(flow)["code"])
    assert "refresh_token" in flow.fetch_token(code=authorize(flow, prompt="consent")["code"])


def test_signing_in_as_another_account_and_denying_consent(google: GoogleEmulator, flow: Flow) -> None:
    google.sign_in_as("carol@example.com", "Carol")
    google.deny_next_consent()
    denied = authorize(flow)
    assert denied["error"] == "access_denied" and "code" not in denied

    flow.fetch_token(code=authorize(flow)["code"])
    userinfo = flow.authorized_session().get(google.base_url + "/oauth2/v2/userinfo").json()
    assert userinfo["email"] == "carol@example.com" and userinfo["name"] == "Carol"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"client_id": "someone-else"}, 401),
        ({"redirect_uri": "https://evil.example/cb"}, 400),
        ({"code_challenge_method": "plain"}, 400),
        ({"code_challenge": None}, 400),
        ({"state": None}, 400),
        ({"response_type": "token"}, 400),
    ],
)
def test_authorize_refuses_what_google_refuses(
    google: GoogleEmulator, flow: Flow, change: dict[str, str | None], status: int
) -> None:
    url, _ = flow.authorization_url()
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in change.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    code, location = visit(parts._replace(query=urllib.parse.urlencode(params)).geturl())
    assert (code, location) == (status, "")
