"""Form text is UTF-8 or refused: Starlette would read other bytes as Latin-1, silently.

Starlette decodes a multipart field whose bytes are not UTF-8 as Latin-1, and reads the
raw bytes of a URL-encoded body as Latin-1 before unescaping them (an escaped byte that
is not UTF-8 becomes U+FFFD), so a case number sent as b"2026-\\xe9" would be stored as
"2026-é", a text nobody typed. `FormTextCheck` reads the same bytes as they stream to the
app (keeping at most one URL-encoded field), decodes every form field that is not a file
strictly as UTF-8, and notes the first that fails in the request's scope;
`refuse_undecodable_form`, which `authorise` calls once the form has been read and before
any route runs, turns the note into a 400 naming the field.
"""

from __future__ import annotations

import codecs
from typing import Protocol
from urllib.parse import unquote_to_bytes

from fastapi import Request
from python_multipart import MultipartParser, QuerystringParser
from python_multipart.multipart import parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from candor.server.errors import RefusedError

# Where the first problem found is noted, in the ASGI scope every layer shares.
FORM_PROBLEM = "candor.form_problem"
# Starlette refuses a URL-encoded field over 1 MiB itself; past that, this check stops.
_MAX_FIELD_BYTES = 1 << 20
_SHOWN_NAME_CHARS = 60


class _Check(Protocol):
    problem: str | None

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> None: ...


def _field(name: bytes) -> str:
    """How a message names a field: "the form field 'case_number'"."""
    shown = name.decode("utf-8", "replace")[:_SHOWN_NAME_CHARS]
    return f"the form field {shown!r}"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _MultipartCheck:
    """Each part that is not a file: its name, its file name and its value, as UTF-8."""

    def __init__(self, boundary: bytes) -> None:
        self.problem: str | None = None
        self._header = b""
        self._value = b""
        self._disposition = b""
        self._name = b""
        self._is_file = False
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> None:
        self._parser.finalize()

    def _fail(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem

    def _begin(self) -> None:
        self._disposition = b""
        self._decoder.reset()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"")
        self._is_file = b"filename" in options
        if not _is_utf8(self._name):
            self._fail(f"{_field(self._name)} has a name that is not UTF-8 text")
        elif self._is_file and not _is_utf8(options[b"filename"]):
            self._fail(f"the file name sent in {_field(self._name)} is not UTF-8 text")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file:
            self._decode(data[start:end], final=False)

    def _end(self) -> None:
        if not self._is_file:
            self._decode(b"", final=True)

    def _decode(self, data: bytes, *, final: bool) -> None:
        try:
            self._decoder.decode(data, final=final)
        except UnicodeDecodeError:
            self._fail(f"{_field(self._name)} is not UTF-8 text")
            self._decoder.reset()


class _UrlEncodedCheck:
    """Each name=value pair: ASCII as sent (browsers escape every other byte), UTF-8 unescaped."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self._name = b""
        self._value = b""
        self._parser = QuerystringParser(
            {
                "on_field_start": self._start,
                "on_field_name": self._name_data,
                "on_field_data": self._value_data,
                "on_field_end": self._end,
            }
        )

    def feed(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> None:
        self._parser.finalize()

    def _start(self) -> None:
        self._name, self._value = b"", b""

    def _name_data(self, data: bytes, start: int, end: int) -> None:
        self._name = self._bounded(self._name + data[start:end])

    def _value_data(self, data: bytes, start: int, end: int) -> None:
        self._value = self._bounded(self._value + data[start:end])

    def _bounded(self, data: bytes) -> bytes:
        if len(data) > _MAX_FIELD_BYTES:
            raise _TooLongToCheckError
        return data

    def _end(self) -> None:
        if self.problem is not None:
            return
        name = unquote_to_bytes(self._name.replace(b"+", b" "))
        for raw in (self._name, self._value):
            if not raw.isascii():
                shown = _field(name) if _is_utf8(name) else "a form field's name"
                self.problem = (
                    f"{shown} is not URL-encoded: send its text as UTF-8, every byte "
                    "outside ASCII escaped (%C3%A9 for é)"
                )
                return
        if not _is_utf8(name):
            self.problem = f"{_field(name)} has a name that is not UTF-8 text"
        elif not _is_utf8(unquote_to_bytes(self._value.replace(b"+", b" "))):
            self.problem = f"{_field(name)} is not UTF-8 text"


class _TooLongToCheckError(Exception):
    pass


def _check_for(scope: Scope) -> _Check | None:
    """The check for this request's body, or None when it is not a form."""
    if scope.get("method") in {"GET", "HEAD", "OPTIONS"}:
        return None
    header = dict(scope.get("headers") or []).get(b"content-type")
    if header is None:
        return None
    kind, options = parse_options_header(header)
    if kind == b"application/x-www-form-urlencoded":
        return _UrlEncodedCheck()
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        return None
    check = _MultipartCheck(options[b"boundary"])
    charset = options.get(b"charset")
    if charset is not None and _codec(charset) != "utf-8":
        shown = charset.decode("ascii", "replace")[:_SHOWN_NAME_CHARS]
        check.problem = f"the form is declared as {shown!r} text; send it as UTF-8"
    return check


def _codec(charset: bytes) -> str | None:
    try:
        return codecs.lookup(charset.decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


class FormTextCheck:
    """ASGI middleware: note the first form field of a request that is not UTF-8 text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        check = _check_for(scope) if scope["type"] == "http" else None
        if check is None:
            await self.app(scope, receive, send)
            return
        if check.problem is not None:
            scope[FORM_PROBLEM] = check.problem
        await self.app(scope, _checking(scope, receive, check), send)


def _checking(scope: Scope, receive: Receive, check: _Check) -> Receive:
    """`receive`, feeding each body chunk to `check` on its way to the app."""
    checking = check.problem is None

    async def checked_receive() -> Message:
        nonlocal checking
        message = await receive()
        if checking and message["type"] == "http.request":
            try:
                check.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    check.finish()
                    checking = False
            except Exception:
                # A body the parser cannot read: Starlette's own parser refuses it.
                checking = False
            if check.problem is not None:
                checking = False
                scope[FORM_PROBLEM] = check.problem
        return message

    return checked_receive


def refuse_undecodable_form(request: Request) -> None:
    """Refuse (400) a request whose form, as read so far, holds text that is not UTF-8."""
    problem = request.scope.get(FORM_PROBLEM)
    if isinstance(problem, str):
        raise RefusedError(400, problem)
