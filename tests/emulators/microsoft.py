"""Microsoft emulators for Kite's OneDrive backend: identity platform (TLS) + Graph OneDrive + download host.

    with MicrosoftEmulators() as ms:
        app = ms.msal_app()                       # real msal.PublicClientApplication against ms.identity
        tokens = ms.identity.issue_tokens()       # or drive the auth-code flow with ms.identity.visit(...)
        httpx.get(f"{ms.graph_url}/me/drive", headers={"Authorization": f"Bearer {tokens['access_token']}"})

The pieces live in :mod:`tests.emulators.ms_identity`, :mod:`tests.emulators.ms_graph` and
:mod:`tests.emulators.tls`; this module wires them to one shared :class:`Directory` (accounts + tokens), so the
Graph server accepts exactly the access tokens the identity server issued.

Standalone: ``python -m tests.emulators.microsoft`` starts all three servers, mints a token pair and prints the
``export`` lines that point the app at them; it serves until Ctrl+C.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from tests.emulators.ms_graph import DriveItem, GraphEmulator, UploadSession, quick_xor_hash, stop_all
from tests.emulators.ms_identity import (
    DEFAULT_CLIENT_ID,
    DEFAULT_SCOPES,
    Authorization,
    Directory,
    IdentityEmulator,
)
from tests.emulators.tls import TlsFiles, session_certificate

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_SCOPES",
    "Authorization",
    "Directory",
    "DriveItem",
    "GraphEmulator",
    "IdentityEmulator",
    "MicrosoftEmulators",
    "UploadSession",
    "quick_xor_hash",
]


class MicrosoftEmulators:
    """Identity (https) + Graph (http) + download host (http), sharing one account/token directory."""

    def __init__(
        self, *, client_id: str = DEFAULT_CLIENT_ID, tls: TlsFiles | None = None, app_name: str = "Kite"
    ) -> None:
        self.directory = Directory()
        self.identity = IdentityEmulator(self.directory, tls=tls or session_certificate(), client_ids=[client_id])
        self.graph = GraphEmulator(self.directory, app_name=app_name)

    def start(self) -> MicrosoftEmulators:
        self.identity.start()
        self.graph.start()
        self.graph.authorization_uri = f"{self.identity.authority()}/oauth2/authorize"
        return self

    def stop(self) -> None:
        stop_all([self.graph.server, self.graph.download_server, self.identity.server])

    def __enter__(self) -> MicrosoftEmulators:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client_id(self) -> str:
        return self.identity.client_id

    @property
    def cert_path(self) -> str:
        return self.identity.cert_path

    @property
    def authority(self) -> str:
        return self.identity.authority("common")

    @property
    def graph_url(self) -> str:
        return self.graph.url

    def env(self) -> dict[str, str]:
        return {
            "KITE_GRAPH_URL": self.graph_url,
            "KITE_MS_AUTHORITY": self.authority,
            "KITE_CA_BUNDLE": self.cert_path,
            "KITE_MS_CLIENT_ID": self.client_id,
        }

    def http_session(self) -> Any:
        """A ``requests.Session`` for MSAL: trusts only the session cert, ignores REQUESTS_CA_BUNDLE & proxies."""
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = self.cert_path
        return session

    def msal_app(self, *, tenant: str = "common", token_cache: Any = None, http_client: Any = None) -> Any:
        """A real ``msal.PublicClientApplication`` wired to the identity emulator (the constructor fetches the
        discovery document). The caller closes ``http_client`` (default: a new :meth:`http_session`)."""
        import msal

        return msal.PublicClientApplication(
            self.client_id,
            authority=self.identity.authority(tenant),
            instance_discovery=False,
            http_client=http_client if http_client is not None else self.http_session(),
            token_cache=token_cache,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--user", default=None, help="account to sign in as (default bob@example.com)")
    parser.add_argument("--quota", type=int, default=None, help="drive quota in bytes")
    args = parser.parse_args(argv)
    ms = MicrosoftEmulators(client_id=args.client_id).start()
    try:
        if args.user:
            ms.identity.sign_in_as(args.user)
        if args.quota is not None:
            ms.graph.set_quota(args.quota)
        ms.graph.approot()
        tokens = ms.identity.issue_tokens()
        env = ms.env()
        print("export " + " ".join(f"{k}={v}" for k, v in env.items()))
        print(f"export KITE_MS_ACCESS_TOKEN={tokens['access_token']}")
        print(f"export KITE_MS_REFRESH_TOKEN={tokens['refresh_token']}")
        print(f"# identity {ms.identity.base_url}, graph {ms.graph.base_url}, downloads {ms.graph.download_base_url}")
        print(f"# signed in as {ms.directory.current_username}; serving until Ctrl+C", file=sys.stderr)
        sys.stdout.flush()
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        ms.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
