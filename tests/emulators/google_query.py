"""Drive v3 request languages, emulated: the ``fields`` partial-response selector and the ``q`` search query.

- ``fields`` (developers.google.com/workspace/drive/api/guides/fields-parameter): ``a,b/c,files(id,name),*``.
  Selections are checked against the resource schemas of the shipped discovery document, so a selector Google
  rejects (``Invalid field selection bogus``) is rejected here too; fields the emulator never fills in are
  simply absent, as with Google for properties that do not apply.
- ``q`` (developers.google.com/workspace/drive/api/guides/ref-search-terms): ``'<id>' in parents``,
  ``name = / != / contains``, ``mimeType = / != / contains``, ``trashed``/``starred = true|false``,
  ``modifiedTime``/``createdTime`` comparisons, ``fullText contains``, ``'me' in owners``,
  ``properties``/``appProperties has { key='k' and value='v' }``, combined with ``and``, ``or``, ``not`` and
  parentheses. Anything else is ``400 Invalid Value`` on ``q``, as with Google.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from typing import Any

Selection = dict[str, Any]  # field name -> sub-selection (None = the whole value)


class QueryError(ValueError):
    """A ``q`` or ``fields`` value Google would refuse; ``str(exc)`` is the offending part."""


def rfc3339(timestamp: float) -> str:
    """Drive's timestamp format: UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise QueryError(text) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


# -- fields -----------------------------------------------------------------------------------------------
def parse_fields(spec: str) -> Selection:
    """``"nextPageToken,files(id,name),user/emailAddress"`` -> ``{"nextPageToken": None, "files": {...}, ...}``."""
    text = spec.replace(" ", "")
    pos = 0

    def parse_list(nested: bool) -> Selection:
        nonlocal pos
        selection: Selection = {}
        while True:
            match = re.compile(r"[A-Za-z_*][A-Za-z0-9_]*(?:/[A-Za-z_*][A-Za-z0-9_]*)*").match(text, pos)
            if match is None:
                raise QueryError(text[pos:] or spec)
            pos = match.end()
            sub: Selection | None = None
            if pos < len(text) and text[pos] == "(":
                pos += 1
                sub = parse_list(nested=True)
                if pos >= len(text) or text[pos] != ")":
                    raise QueryError(spec)
                pos += 1
            names = match.group().split("/")
            for name in reversed(names[1:]):
                sub = {name: sub}
            _merge(selection, names[0], sub)
            if pos >= len(text) or (nested and text[pos] == ")"):
                return selection
            if text[pos] != ",":
                raise QueryError(text[pos:])
            pos += 1

    if not text:
        raise QueryError(spec)
    result = parse_list(nested=False)
    if pos != len(text):
        raise QueryError(text[pos:])
    return result


def _merge(node: Selection, name: str, sub: Selection | None) -> None:
    if name in node and node[name] is None:
        return  # already selected whole
    if sub is None:
        node[name] = None
        return
    existing = node.setdefault(name, {})
    for key, value in sub.items():
        _merge(existing, key, value)


@functools.cache
def schemas() -> dict[str, Any]:
    try:
        from googleapiclient import discovery_cache

        document = discovery_cache.get_static_doc("drive", "v3")
    except ImportError:  # pragma: no cover - the client library is a dependency of the app
        return {}
    return json.loads(document)["schemas"] if document else {}


def validate_fields(selection: Selection, schema_name: str) -> None:
    """Raise QueryError(name) for a selected field the resource type does not have."""
    all_schemas = schemas()
    if schema_name not in all_schemas:
        return

    def check(node: Selection, schema: dict[str, Any]) -> None:
        properties = schema.get("properties", {})
        for name, sub in node.items():
            if name == "*":
                continue
            prop = properties.get(name)
            if prop is None:
                raise QueryError(name)
            if sub is None:
                continue
            ref = prop.get("$ref") or prop.get("items", {}).get("$ref")
            if ref in all_schemas:
                check(sub, all_schemas[ref])
            elif "properties" in prop:
                check(sub, prop)
            elif "additionalProperties" not in prop:
                raise QueryError(name)

    check(selection, all_schemas[schema_name])


def apply_fields(value: Any, selection: Selection | None) -> Any:
    """The partial response: only the selected keys, recursively; lists are filtered element by element."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [apply_fields(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    if "*" in selection:
        return {key: apply_fields(item, selection.get(key)) for key, item in value.items()}
    return {key: apply_fields(value[key], sub) for key, sub in selection.items() if key in value}


# -- q ----------------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>!=|<=|>=|=|<|>|\(|\)|\{|\})|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_STRING_FIELDS = {"name", "mimeType", "fullText"}
_TIME_FIELDS = {"modifiedTime", "createdTime", "viewedByMeTime"}
_BOOL_FIELDS = {"trashed", "starred"}
Predicate = Callable[[Any], bool]


def _tokenize(q: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        match = _TOKEN.match(q, pos)
        if match is None:
            raise QueryError(q[pos:])
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
    return tokens


class FileView:
    """What a query needs to know about a file; the emulator builds one per candidate."""

    def __init__(
        self,
        name: str,
        mime_type: str,
        parents: list[str],
        trashed: bool,
        starred: bool,
        times: dict[str, float],
        properties: dict[str, str],
        app_properties: dict[str, str],
        text: str = "",
    ) -> None:
        self.name, self.mime_type, self.parents = name, mime_type, parents
        self.trashed, self.starred, self.times = trashed, starred, times
        self.properties, self.app_properties, self.text = properties, app_properties, text


class _Parser:
    def __init__(self, q: str, alias: Callable[[str], str]) -> None:
        self.tokens = _tokenize(q)
        self.pos = 0
        self.alias = alias

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        token_kind, token_value = self.peek()
        if token_kind != kind or (value is not None and token_value.lower() != value.lower()):
            raise QueryError(token_value or "end of query")
        self.pos += 1
        return token_value

    def is_word(self, word: str, offset: int = 0) -> bool:
        kind, value = self.peek(offset)
        return kind == "word" and value.lower() == word

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek()[0] != "end":
            raise QueryError(self.peek()[1])
        return predicate

    def or_expr(self) -> Predicate:
        terms = [self.and_expr()]
        while self.is_word("or"):
            self.pos += 1
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else (lambda f: any(term(f) for term in terms))

    def and_expr(self) -> Predicate:
        terms = [self.unary()]
        while self.is_word("and"):
            self.pos += 1
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda f: all(term(f) for term in terms))

    def unary(self) -> Predicate:
        if self.is_word("not"):
            self.pos += 1
            inner = self.unary()
            return lambda f: not inner(f)
        if self.peek() == ("op", "("):
            self.pos += 1
            inner = self.or_expr()
            self.take("op", ")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, value = self.peek()
        if kind == "str":
            self.pos += 1
            self.take("word", "in")
            collection = self.take("word")
            if collection == "parents":
                parent = self.alias(value)
                return lambda f: parent in f.parents
            if collection in ("owners", "writers", "readers"):
                return lambda f: value == "me" or "@" in value
            raise QueryError(collection)
        field_name = self.take("word")
        if field_name in ("properties", "appProperties"):
            return self.has_property(field_name)
        op_kind, op = self.peek()
        if op_kind == "word" and op.lower() == "contains":
            op = "contains"
        elif op_kind != "op" or op not in ("=", "!=", "<", "<=", ">", ">="):
            raise QueryError(op or field_name)
        self.pos += 1
        if field_name in _BOOL_FIELDS:
            literal = self.take("word").lower()
            if literal not in ("true", "false") or op not in ("=", "!="):
                raise QueryError(literal)
            wanted = literal == "true"
            attribute = "trashed" if field_name == "trashed" else "starred"
            return lambda f: (getattr(f, attribute) == wanted) == (op == "=")
        operand = self.take("str")
        if field_name in _TIME_FIELDS:
            if op == "contains":
                raise QueryError(op)
            moment = parse_rfc3339(operand)
            compare = {
                "=": lambda a: a == moment,
                "!=": lambda a: a != moment,
                "<": lambda a: a < moment,
                "<=": lambda a: a <= moment,
                ">": lambda a: a > moment,
                ">=": lambda a: a >= moment,
            }[op]
            return lambda f: field_name in f.times and compare(f.times[field_name])
        if field_name not in _STRING_FIELDS or op not in ("=", "!=", "contains"):
            raise QueryError(field_name)
        if field_name == "fullText":
            if op != "contains":
                raise QueryError(op)
            needle = operand.lower()
            return lambda f: needle in f.name.lower() or needle in f.text.lower()
        attribute = "name" if field_name == "name" else "mime_type"
        if op == "contains":
            if field_name == "name":
                # Google: "The contains operator only performs prefix matching for a name term" (per word).
                needle = operand.lower()
                return lambda f: (
                    any(word.startswith(needle) for word in _words(f.name)) or f.name.lower().startswith(needle)
                )
            return lambda f: operand in getattr(f, attribute)
        if op == "=":
            return lambda f: getattr(f, attribute) == operand
        return lambda f: getattr(f, attribute) != operand

    def has_property(self, field_name: str) -> Predicate:
        self.take("word", "has")
        self.take("op", "{")
        self.take("word", "key")
        self.take("op", "=")
        key = self.take("str")
        self.take("word", "and")
        self.take("word", "value")
        self.take("op", "=")
        value = self.take("str")
        self.take("op", "}")
        attribute = "properties" if field_name == "properties" else "app_properties"
        return lambda f: getattr(f, attribute).get(key) == value


def _words(name: str) -> list[str]:
    return [word for word in re.split(r"[\s._\-]+", name.lower()) if word]


def compile_query(q: str, alias: Callable[[str], str] = lambda ident: ident) -> Predicate:
    """A predicate over FileView for a Drive ``q`` string; ``alias`` maps ``root``/``appDataFolder`` to ids."""
    return _Parser(q, alias).parse()
