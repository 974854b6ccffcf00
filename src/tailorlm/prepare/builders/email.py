"""The `email` builder: support threads → chat examples (user = the customer, assistant = the agent).

The e-mail reader gives one document per message, its body already cleaned (quotes and signatures
removed), with fields `message_id, in_reply_to, references, thread_id (the root message's id), role
("customer"|"agent"), date, subject, from, to`. Messages are grouped by `thread_id` and ordered by
date (then by position in the file). A thread becomes one example, `source` = the thread id:

* a linear thread (every agent message answers the latest customer message before it) becomes one
  conversation; consecutive messages of one side are joined; with several rounds it is multi-turn;
* a branched thread (an agent answers an earlier customer message, per `In-Reply-To`) becomes one
  single-turn example per agent message, paired with the message it replies to.

Agent messages with no customer message before them, and customer messages nobody answered at the end
of a thread, are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime

from tailorlm.config import Project, Source
from tailorlm.documents import Document
from tailorlm.formats.examples import Example, Message, Role
from tailorlm.prepare.builders import BuilderOutput, Reads, Skipped, builder, file_label, text_of

TURN_ROLES: dict[str, Role] = {"customer": "user", "agent": "assistant"}

# Of an e-mail's fields only the subject is text the builder uses; the headers (from, to, message ids)
# never reach the dataset, and redacting the ids would break threading.
TEXT_FIELDS = frozenset({"subject"})


def _reads(source: Source) -> Reads:
    return Reads(TEXT_FIELDS.__contains__, lambda document: True)


# Pseudonyms are numbered per thread, so a customer keeps their placeholder across the conversation.
@builder("email", tasks=("chat", "generate"), reads=_reads, units=lambda documents: email_threads(documents))
def email(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    """Support threads → one conversation per thread (customer = user, agent = assistant)."""
    threads: dict[str, list[tuple[int, Document]]] = {}
    thread_ids = email_threads(documents)
    for position, document in enumerate(documents):
        threads.setdefault(thread_ids[document.id], []).append((position, document))
    for thread, members in threads.items():
        kept = []
        for position, document in members:
            if document.text.strip():
                kept.append((position, document))
            else:
                yield Skipped("empty message", thread)
        if kept:
            yield from _thread_examples(thread, _in_order(kept), project)


def email_threads(documents: Sequence[Document]) -> dict[str, str]:
    """Document id → thread id. Threads are the reader's `thread_id`, joined where a message's
    In-Reply-To names a message of another thread (mailers that cut the References chain short);
    a joined thread keeps the id of its earliest message's thread."""
    parent: dict[str, str] = {}

    def root(thread: str) -> str:
        while parent.get(thread, thread) != thread:
            thread = parent[thread]
        return thread

    first_seen: dict[str, int] = {}
    thread_by_message: dict[str, str] = {}
    for position, document in enumerate(documents):
        thread = thread_of(document)
        first_seen.setdefault(thread, position)
        message_id = text_of(document.fields.get("message_id"))
        if message_id:
            thread_by_message.setdefault(message_id, thread)
    for document in documents:
        replied = thread_by_message.get(text_of(document.fields.get("in_reply_to")))
        if replied is not None:
            a, b = root(replied), root(thread_of(document))
            if a != b:
                earlier, later = sorted((a, b), key=lambda t: first_seen[t])
                parent[later] = earlier
    return {document.id: root(thread_of(document)) for document in documents}


def thread_of(document: Document) -> str:
    """The thread a message says it belongs to: `thread_id` (older readers: `thread`), else its own id."""
    fields = document.fields
    return (
        text_of(fields.get("thread_id"))
        or text_of(fields.get("thread"))
        or text_of(fields.get("message_id"))
        or document.id
    )


def _in_order(members: list[tuple[int, Document]]) -> list[Document]:
    """By date when every message has a readable one, else in file order."""
    stamps = [_timestamp(document) for _, document in members]
    if any(stamp is None for stamp in stamps):
        return [document for _, document in members]
    order = sorted(range(len(members)), key=lambda i: (stamps[i], members[i][0]))
    return [members[i][1] for i in order]


def _timestamp(document: Document) -> float | None:
    """Seconds since the epoch from the Date field (None when missing or unreadable)."""
    value = document.fields.get("date")
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError, IndexError):
        try:
            return datetime.fromisoformat(str(value)).timestamp()
        except ValueError:
            return None


def _role(document: Document) -> str:
    return text_of(document.fields.get("role")).lower()


def _thread_examples(thread: str, messages: list[Document], project: Project) -> BuilderOutput:
    by_id = {text_of(m.fields.get("message_id")): m for m in messages if m.fields.get("message_id")}
    meta = {
        "file": file_label(messages[0], project),
        "thread": thread,
        "subject": text_of(messages[0].fields.get("subject")),
    }
    pairs: list[tuple[Document, Document]] = []  # (customer message replied to, agent reply)
    linear = True
    last_customer: Document | None = None
    for message in messages:
        role = _role(message)
        if role == "customer":
            last_customer = message
        elif role == "agent":
            replied = by_id.get(text_of(message.fields.get("in_reply_to")))
            if replied is None or _role(replied) != "customer":
                replied = last_customer  # no usable In-Reply-To: the thread order decides
            if replied is None:
                yield Skipped("agent message without a customer message before it", thread)
                continue
            linear = linear and replied is last_customer
            pairs.append((replied, message))
        else:
            yield Skipped(f"message with unknown role {role or '(none)'!r}", thread)
    if not pairs:
        if last_customer is not None:
            yield Skipped("thread without an agent reply", thread)
        return
    system = [Message(role="system", content=project.system_prompt)] if project.system_prompt else []
    if linear:
        turns = _conversation(messages, until=pairs[-1][1])
        if _role(messages[-1]) == "customer" and messages[-1] is not pairs[-1][0]:
            yield Skipped("customer message without an agent reply", thread)
        yield Example(
            messages=[*system, *turns],
            source=thread,
            meta={**meta, "turns": sum(t.role == "assistant" for t in turns)},
        )
        return
    for customer, agent in pairs:
        yield Example.chat(
            system=project.system_prompt,
            user=customer.text.strip(),
            assistant=agent.text.strip(),
            source=thread,
            meta={**meta, "turns": 1},
        )


def _conversation(messages: list[Document], *, until: Document) -> list[Message]:
    """User/assistant turns from the first customer message to `until`, same-side messages joined."""
    turns: list[Message] = []
    started = False
    for message in messages:
        role: Role | None = TURN_ROLES.get(_role(message))
        started = started or role == "user"
        text = message.text.strip()
        if started and role and text:
            if turns and turns[-1].role == role:
                turns[-1] = Message(role=role, content=f"{turns[-1].content}\n\n{text}")
            else:
                turns.append(Message(role=role, content=text))
        if message is until:
            break
    return turns
