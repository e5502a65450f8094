"""E-mail: `.eml` through the standard `email` package, Outlook `.msg` through extract-msg.

Both become one document: the From, To, Cc, Date and Subject lines, a blank line, then the plain-text body (or
the HTML body's visible text when there is no plain one). Attachments are listed by name in the metadata, not
read: a mail folder would otherwise ingest every attached PDF once per message that carries it.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage, Message
from pathlib import Path
from typing import NamedTuple, cast

from ingest.errors import LoadError, one_line
from ingest.loaders._io import quiet_logger, read_bytes
from ingest.loaders.html import html_to_text
from ingest.loaders.text import decode_text
from ingest.types import SourceDoc

MSG_INSTALL_HINT = "pip install 'ragkit[msg]' (extract-msg is GPL-3.0, so it is not installed by default)"
_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # every .msg file is an OLE2 compound file
# What a damaged message raises from deep in a parser, besides the parser's own errors.
_DAMAGED = (ValueError, LookupError, TypeError, AttributeError, IndexError, UnicodeError, OSError)


class Mail(NamedTuple):
    """A message as read: its header values by name (those it has), body text, and attachment names."""

    headers: dict[str, str]
    body: str
    attachments: list[str]
    date: datetime | None


def read_eml(data: bytes) -> Mail:
    """A MIME message (RFC 5322); LoadError when it has none of the usual headers."""
    from email import policy
    from email.parser import BytesParser

    try:
        decode_text(data)  # the parser makes a "message" of any bytes: binary content must be refused before it
    except LoadError as exc:
        raise LoadError(f"not an e-mail message: {exc}") from exc
    try:
        message = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(data))  # policy.default's class
        headers = {name: " ".join(str(message[name]).split()) for name in _HEADERS if message[name] is not None}
        if not headers:
            raise LoadError("not an e-mail message: it has no From, To, Date or Subject header")
        date = getattr(message["Date"], "datetime", None)
        return Mail(headers, _eml_body(message), _eml_attachments(message), date)
    except _DAMAGED as exc:
        raise LoadError(f"not a readable e-mail message: {one_line(exc)}") from exc


def _eml_body(message: EmailMessage) -> str:
    plain = message.get_body(preferencelist=("plain",))
    if plain is not None and (text := _part_text(plain).strip()):
        return text
    html = message.get_body(preferencelist=("html",))
    if html is None:
        return ""
    # A BOM makes the parser read the already decoded text as UTF-8, whatever its <meta charset> claims.
    return html_to_text(codecs.BOM_UTF8 + _part_text(html).encode("utf-8"))[0]


def _part_text(part: Message) -> str:
    """A text part decoded by its charset; by detection when the charset is unknown or wrong."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        return decode_text(payload) if isinstance(payload, bytes) and payload.strip() else ""


def _eml_attachments(message: EmailMessage) -> list[str]:
    return [part.get_filename() or part.get_content_type() for part in message.iter_attachments()]


def read_msg(data: bytes) -> Mail:
    """An Outlook message; its file handle is closed before this returns."""
    try:
        import extract_msg
        from extract_msg.exceptions import ExMsgBaseException
    except ImportError as exc:
        raise LoadError(f".msg files need extract-msg: {MSG_INSTALL_HINT}") from exc

    if not data.startswith(_OLE_MAGIC):
        raise LoadError("not an Outlook .msg file: no OLE2 header")
    try:
        with quiet_logger("extract_msg"), extract_msg.openMsg(io.BytesIO(data)) as message:
            values = {
                "From": message.sender, "To": message.to, "Cc": message.cc,
                "Date": message.date.isoformat(sep=" ") if message.date else None, "Subject": message.subject,
            }  # fmt: skip
            headers = {name: " ".join(str(value).split()) for name, value in values.items() if value}
            body = (getattr(message, "body", None) or "").replace("\r\n", "\n").strip()  # Outlook writes CRLF
            if not body and (html := getattr(message, "htmlBody", None)):
                body = html_to_text(html)[0]
            names = [_attachment_name(item) for item in message.attachments]
            return Mail(headers, body, [name for name in names if name], message.date)
    except (ExMsgBaseException, *_DAMAGED) as exc:
        raise LoadError(f"not a readable .msg file: {one_line(exc)}") from exc


def _attachment_name(attachment: object) -> str:
    for name in ("longFilename", "shortFilename", "displayName", "name"):
        if value := getattr(attachment, name, None):
            return str(value)
    return ""


def mail_document(path: Path, mail: Mail) -> SourceDoc:
    """The document of a message: header lines, a blank line, the body; titled by the subject, else the stem."""
    if not mail.body and not mail.headers.get("Subject"):
        raise LoadError("no text in message: no subject and no body")
    lines = "\n".join(f"{name}: {mail.headers[name]}" for name in _HEADERS if name in mail.headers)
    metadata = {name.lower(): value for name, value in mail.headers.items() if name != "Subject"}
    metadata |= {"date": mail.date.isoformat() if mail.date else None, "attachments": mail.attachments}
    text = f"{lines}\n\n{mail.body}" if mail.body else lines
    return SourceDoc(str(path), text, mail.headers.get("Subject") or path.stem, metadata)


class EmlLoader:
    """`.eml` files (MIME messages): one document each, see `mail_document`."""

    suffixes: tuple[str, ...] = (".eml",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        return iter([mail_document(path, read_eml(read_bytes(path)))])


class MsgLoader:
    """Outlook `.msg` files: one document each, see `mail_document`."""

    suffixes: tuple[str, ...] = (".msg",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        return iter([mail_document(path, read_msg(read_bytes(path)))])
