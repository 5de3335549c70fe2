"""A stand-in for the system browser, for ``BROWSER="python tests/fake_browser.py %s"``.

It does what a person's browser does after they click "Allow": it loads the consent page and follows the
provider's answer back to Kite's loopback listener (a redirect for Google, an auto-posting form for
Microsoft). It trusts ``KITE_CA_BUNDLE`` like the app does, and exits 0 when the listener said "signed in".
"""

from __future__ import annotations

import os
import sys
from html.parser import HTMLParser

import requests


class FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def main(url: str) -> int:
    with requests.Session() as browser:
        browser.trust_env = False
        browser.verify = os.environ.get("KITE_CA_BUNDLE") or True
        page = browser.get(url, allow_redirects=False, timeout=10)
        if page.status_code in (301, 302, 303):
            answer = browser.get(page.headers["location"], timeout=10)
        else:
            form = FormReader()
            form.feed(page.text)
            if not form.action:
                print(f"fake browser: no redirect and no form ({page.status_code})", file=sys.stderr)
                return 1
            answer = browser.post(form.action.replace("//localhost:", "//127.0.0.1:"), data=form.fields, timeout=10)
    return 0 if answer.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
