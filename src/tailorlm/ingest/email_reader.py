"""Reads e-mail (.eml, one message; .mbox, many) into one Document per message, reply text only.

Parsed with the stdlib `email` package (`policy.default`); an mbox is split at "From " lines that
start the file or follow a blank line, and is recognised by that first line whatever the file's name.
The text is the text/plain body (else the HTML body as Markdown) with quoted replies removed (an
"On ... wrote:" line and every line starting with ">", Outlook's "-----Original Message-----" or
From:/Sent: block and everything after it) and the signature removed (from a "-- " line on).

`fields`: message_id, in_reply_to, references (list), thread_id (the thread's root message-id: the
first References entry, else the In-Reply-To chain followed within the file, else the message's own
id), from, to, subject, date (ISO 8601 when parseable) and role:
  * "agent" when the sender's domain is one of the company's domains (or a subdomain of one),
    "customer" otherwise;
  * the company's domains are the `company_domains` option when given; otherwise they are inferred
    per file as the most common recipient (To:) domain, ties going to the first message's To: —
    in a support mailbox the customers all write to the company. A lone .eml file can't show that
    rule reliably (its To: is the company only if a customer wrote it): pass `company_domains`.
`meta` records the domains used and how they were chosen, attachments' names, and parse defects.

A message with no body text left is skipped with a warning ("partial"); one whose headers can't be
read is skipped as malformed. It can't: read attachments, decrypt S/MIME or PGP, or strip
quotations in languages other than English, German, French, Spanish and Italian.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from tailorlm.documents import Document, ReadError
from tailorlm.ingest.html import html_to_markdown
from tailorlm.ingest.readers import reader
from tailorlm.ingest.source import SourceFile, describe_start

_FROM_LINE = re.compile(rb"From \S+ +\w{3} +\w{3} +\d{1,2} +\d{1,2}:\d\d")
_ATTRIBUTION_START = re.compile(r"^\s*(On|Am|Le|El|Il)\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"\b(wrote|schrieb|a écrit|escribió|ha scritto)\b[^:]{0,120}:\s*$", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine)\s*-{2,}", re.I
)
_OUTLOOK_FROM = re.compile(r"^\s*\**From:\**\s")
_OUTLOOK_SENT = re.compile(r"^\s*\**(Sent|Date):\**\s")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def is_mbox(head: bytes) -> bool:
    return bool(_FROM_LINE.match(head))


def strip_reply(body: str) -> str:
    """The author's own text: quoted replies, their attribution lines and the signature removed."""
    lines = body.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.rstrip() == "--" or _ORIGINAL_MESSAGE.match(line):
            break  # signature or forwarded original: nothing after it is the author's reply
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_SENT.match(n) for n in lines[index + 1 : index + 4]):
            break
        if _ATTRIBUTION_START.match(line):
            joined = line + " " + (lines[index + 1] if index + 1 < len(lines) else "")
            if _ATTRIBUTION_END.search(line):
                index += 1
                continue
            if _ATTRIBUTION_END.search(joined) and len(joined) < 400:  # attribution wrapped onto two lines
                index += 2
                continue
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
        index += 1
    text = "\n".join(kept).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


def _split_mbox(data: bytes) -> list[tuple[int, bytes]]:
    """(first line, bytes) of each message; a "From " line at the top or after a blank line starts one."""
    messages: list[tuple[int, list[bytes]]] = []
    previous_blank = True
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if line.startswith(b"From ") and previous_blank:
            messages.append((number, []))
        elif messages:
            messages[-1][1].append(line[1:] if line.startswith(b">From ") else line)
        previous_blank = not line.strip()
    return [(number, b"".join(lines)) for number, lines in messages]


def _header(message: EmailMessage, name: str) -> str | None:
    try:
        value = message[name]
    except Exception:  # a header the parser can't model is as good as absent
        return None
    return (str(value).strip() or None) if value is not None else None


def _domains(message: EmailMessage, name: str) -> list[str]:
    try:
        header = message[name]
        addresses = header.addresses if header is not None else ()
        return [a.domain.lower() for a in addresses if a.domain]
    except Exception:
        return []


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    return html_to_markdown(content)[0] if part.get_content_type() == "text/html" else content


def _date(message: EmailMessage) -> str | None:
    try:
        header = message["Date"]
        when = getattr(header, "datetime", None)
    except Exception:
        return _header(message, "Date")
    return when.isoformat() if when is not None else _header(message, "Date")


def _is_company(domain: str | None, company: Sequence[str]) -> bool:
    if not domain:
        return False
    return any(domain == d or domain.endswith("." + d) for d in company)


@reader(".eml", ".mbox", name="email", sniff=is_mbox)
def read_email(path: Path, *, company_domains: Sequence[str] | None = None) -> Iterator[Document]:
    source = SourceFile.of(path, "email")
    data = path.read_bytes()
    parts = _split_mbox(data) if is_mbox(data[:256]) else [(1, data)]
    parser = BytesParser(policy=policy.default)
    messages: list[tuple[int, int, EmailMessage]] = []
    for position, (line, raw) in enumerate(parts, start=1):
        message = parser.parsebytes(raw)  # policy.default builds EmailMessage
        if not message.keys():
            if len(parts) == 1:
                raise ReadError(f"not an e-mail: no headers found ({describe_start(data)})")
            source.skip(f"message {position} (line {line}): malformed, no headers could be read — skipped")
            continue
        messages.append((position, line, message))

    if isinstance(company_domains, str):
        company_domains = [company_domains]
    if company_domains:
        company = [d.strip().lower().lstrip("@") for d in company_domains]
        rule = "given (company_domains)"
    else:
        counts = Counter(d for _, _, m in messages for d in dict.fromkeys(_domains(m, "To")))
        company = [counts.most_common(1)[0][0]] if counts else []
        rule = "inferred: the most common To: domain"

    parents = {_header(m, "Message-ID"): _header(m, "In-Reply-To") for _, _, m in messages}
    for position, line, message in messages:
        message_id = _header(message, "Message-ID")
        label = (
            f"message {position}"
            + (f" {message_id}" if message_id else "")
            + (f" (line {line})" if len(parts) > 1 else "")
        )
        text = strip_reply(_body(message))
        if not text.strip():
            source.skip(f"{label}: no body text (after removing quoted replies and the signature) — skipped")
            continue
        in_reply_to = _header(message, "In-Reply-To")
        references = _MESSAGE_ID.findall(_header(message, "References") or "")
        thread_id = references[0] if references else None
        if thread_id is None:
            thread_id, seen = message_id, set()
            parent = in_reply_to
            while parent and parent not in seen:
                seen.add(parent)
                thread_id, parent = parent, parents.get(parent)
        senders = _domains(message, "From")
        fields: dict[str, Any] = {
            "message_id": message_id,
            "in_reply_to": in_reply_to,
            "references": references,
            "thread_id": thread_id,
            "from": _header(message, "From"),
            "to": _header(message, "To"),
            "subject": _header(message, "Subject"),
            "date": _date(message),
            "role": "agent" if _is_company(senders[0] if senders else None, company) else "customer",
        }
        meta: dict[str, Any] = {"company_domains": company, "role_rule": rule}
        if len(parts) > 1:
            meta["line"] = line
        if attachments := [p.get_filename() or p.get_content_type() for p in message.iter_attachments()]:
            meta["attachments"] = attachments
        if message.defects:
            meta["defects"] = [type(defect).__name__ for defect in message.defects]
        yield source.document(text, locator=f"message {position}", title=fields["subject"], fields=fields, meta=meta)
