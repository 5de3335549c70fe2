"""The OAuth redirect receiver: a one-shot HTTP listener on 127.0.0.1 for the system browser to come back to.

RFC 8252: the loopback IP literal (not "localhost"), an ephemeral port opened only for this attempt, and
closed as soon as the valid answer arrived, or on cancel or timeout. An answer without the ``state`` of
this attempt is refused with a page saying so and does not end the wait (another page on this computer
could send one). Google's redirect comes as a GET with a query; Microsoft's as a POST form (form_post).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from kite_desktop.core.errors import KiteError

log = logging.getLogger(__name__)
MAX_HEADER = 16 * 1024
MAX_BODY = 64 * 1024
DEFAULT_TIMEOUT = 300.0
READ_TIMEOUT = 10.0

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Kite</title>
<style>body{{font-family:system-ui,sans-serif;margin:15vh auto;max-width:32em;text-align:center;color:#222}}
h1{{color:{colour};font-size:1.5em}}</style></head><body><h1>{title}</h1><p>{text}</p></body></html>"""


class SignInCancelled(KiteError):
    title = "Sign-in cancelled"


class SignInTimedOut(KiteError):
    title = "Sign-in timed out"
    hint = "Start again, and finish in the browser within five minutes."


@dataclass(frozen=True)
class AuthorizationResponse:
    """What the provider sent back: ``code`` and ``state``, or ``error`` (all parameters are kept)."""

    params: dict[str, str]

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def _page(title: str, text: str, ok: bool) -> bytes:
    body = PAGE.format(title=html.escape(title), text=html.escape(text), colour="#1f7a8c" if ok else "#b3261e")
    return body.encode()


class LoopbackListener:
    """Receives exactly one valid authorization response for ``state`` on ``http://127.0.0.1:<port>/``."""

    def __init__(self, state: str, timeout: float = DEFAULT_TIMEOUT):
        self._state = state
        self._timeout = timeout
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[AuthorizationResponse] | None = None
        self.refused = 0
        self._port = 0

    async def start(self) -> LoopbackListener:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._on_connection, host="127.0.0.1", port=0)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def port(self) -> int:
        assert self._port, "start() first"
        return self._port

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def wait(self) -> AuthorizationResponse:
        """The valid response; :class:`SignInTimedOut` or :class:`SignInCancelled` otherwise. Closes the port."""
        assert self._result is not None, "start() first"
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), self._timeout)
        except TimeoutError:
            raise SignInTimedOut("Kite did not hear back from the browser.") from None
        finally:
            await self.close()

    def cancel(self) -> None:
        if self._result is not None and not self._result.done():
            self._result.set_exception(SignInCancelled("You cancelled the sign-in."))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections; an idle browser preconnect must not hold the sign-in
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # -- one HTTP request per connection ----------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, page = await self._answer(reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError, TimeoutError):
            status, page = 400, _page("Bad request", "Kite could not read this request.", ok=False)
        with contextlib.suppress(ConnectionError):
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(page)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
                + page
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        if len(head) > MAX_HEADER:
            raise ValueError("header too large")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        url = urlsplit(target)
        if url.path != "/" or method not in ("GET", "POST"):
            return 404, _page("Not found", "This address only receives Kite's sign-in.", ok=False)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if method == "POST":
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                raise ValueError("body too large")
            body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        state = params.get("state", "")
        if not state or not hmac.compare_digest(state.encode(), self._state.encode()):
            self.refused += 1
            log.warning("refused a sign-in response that does not belong to this attempt")
            return 400, _page(
                "This sign-in is not for Kite's current attempt",
                "Kite ignored it. If you are signing in, finish in the browser window Kite opened.",
                ok=False,
            )
        if self._result is None or self._result.done():
            return 410, _page("Already done", "This sign-in was already completed.", ok=False)
        response = AuthorizationResponse(params)
        self._result.set_result(response)
        if response.error:
            return 200, _page("Sign-in cancelled", "You can close this tab and return to Kite.", ok=False)
        return 200, _page("You are signed in", "You can close this tab and return to Kite.", ok=True)
