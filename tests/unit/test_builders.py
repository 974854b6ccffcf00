"""Builders turn documents into examples: FAQ rows and Markdown, e-mail threads, tables, extraction,
document chunks and imported JSONL datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorlm.config import Project, Source
from tailorlm.documents import Document
from tailorlm.prepare.builders import (
    BuilderError,
    Skipped,
    builder,
    get_builder,
    kinds_for,
    kinds_markdown,
    run_builder,
)
from tailorlm.prepare.builders.documents import chunk_documents, token_counter
from tailorlm.prepare.builders.faq import parse_markdown_faq


def make_project(tmp_path: Path, task: str = "chat", **prepare) -> Project:
    project = Project(
        project="acme",
        base_model=tmp_path / "no-model",
        task=task,
        system_prompt="You are Acme's support assistant.",
        prepare=prepare,
    )
    project.root = tmp_path
    return project


def row(tmp_path: Path, file: str, number: int, **fields: str) -> Document:
    return Document(
        text="\n".join(f"{k}: {v}" for k, v in fields.items()),
        source_path=str(tmp_path / file),
        source_sha256="a" * 64,
        locator=f"row {number}",
        reader="csv",
        fields=fields,
    )


def message(
    tmp_path: Path,
    number: int,
    role: str,
    text: str,
    *,
    thread: str = "<t1@acme>",
    in_reply_to: str = "",
    date: str = "",
) -> Document:
    fields = {
        "message_id": f"<m{number}@acme>",
        "in_reply_to": in_reply_to,
        "references": "",
        "from": "someone@example.com",
        "to": "support@acme.example",
        "subject": "Help",
        "date": date or f"Mon, 3 Feb 2025 10:{number:02d}:00 +0000",
        "role": role,
        "thread_id": thread,
    }
    return Document(
        text=text,
        source_path=str(tmp_path / "support.mbox"),
        source_sha256="b" * 64,
        locator=f"message {number}",
        reader="email",
        fields=fields,
    )


# --- faq -----------------------------------------------------------------------------------------


def test_faq_rows_become_chat_examples(tmp_path):
    project = make_project(tmp_path)
    documents = [
        row(tmp_path, "faq.csv", 1, question="How do I reset the hub?", answer="Hold the button.", topic="x"),
        row(tmp_path, "faq.csv", 2, question="Is there a fee?", answer="", topic="y"),
    ]
    examples, skipped = run_builder(documents, Source(path=Path("faq.csv"), kind="faq"), project)
    assert len(examples) == 1 and skipped == {"faq: empty answer": 1}
    example = examples[0]
    assert [m.role for m in example.messages] == ["system", "user", "assistant"]
    assert example.messages[0].content == project.system_prompt
    assert example.input_text == "How do I reset the hub?" and example.target == "Hold the button."
    assert example.source == "faq.csv#row 1" and example.meta["file"] == "faq.csv"


def test_faq_custom_columns_and_missing_column_named(tmp_path):
    project = make_project(tmp_path)
    documents = [row(tmp_path, "faq.csv", 1, frage="Wie?", antwort="So.")]
    source = Source(path=Path("faq.csv"), kind="faq", question="frage", answer="antwort")
    examples, _ = run_builder(documents, source, project)
    assert examples[0].target == "So."
    with pytest.raises(BuilderError) as error:
        run_builder(documents, Source(path=Path("faq.csv"), kind="faq"), project)
    message_text = str(error.value)
    assert "faq.csv" in message_text and "'question'" in message_text and "'frage', 'antwort'" in message_text


def test_markdown_faq_headings_and_qa_lines(tmp_path):
    headings = (
        "# Acme FAQ\n\nIntro text.\n\n## How do I pair the hub?\n\nOpen the app.\n\nThen tap Pair.\n\n"
        "## Why is it blinking?\n\nIt is updating.\n"
    )
    assert list(parse_markdown_faq(headings)) == [
        ("How do I pair the hub?", "Open the app.\n\nThen tap Pair."),
        ("Why is it blinking?", "It is updating."),
    ]
    lines = "Q: What is Care+?\nA: A subscription.\nIt costs $4.99.\n\n**Q:** Can I cancel?\n**A:** Any time.\n"
    assert list(parse_markdown_faq(lines)) == [
        ("What is Care+?", "A subscription.\nIt costs $4.99."),
        ("Can I cancel?", "Any time."),
    ]
    project = make_project(tmp_path)
    document = Document(text=headings, source_path=str(tmp_path / "faq.md"), source_sha256="c" * 64)
    examples, _ = run_builder([document], Source(path=Path("faq.md"), kind="faq"), project)
    assert [e.source for e in examples] == ["faq.md#q1", "faq.md#q2"]


# --- email ---------------------------------------------------------------------------------------


def test_email_pairs_customer_and_agent(tmp_path):
    project = make_project(tmp_path)
    documents = [
        message(tmp_path, 1, "customer", "My thermostat is offline."),
        message(tmp_path, 2, "agent", "Please restart it.", in_reply_to="<m1@acme>"),
    ]
    examples, _ = run_builder(documents, Source(path=Path("support.mbox"), kind="email"), project)
    assert len(examples) == 1
    example = examples[0]
    assert example.source == "<t1@acme>"
    assert example.input_text == "My thermostat is offline." and example.target == "Please restart it."
    assert example.messages[0].role == "system"


def test_email_multi_round_thread_is_one_conversation(tmp_path):
    project = make_project(tmp_path)
    documents = [
        message(tmp_path, 3, "agent", "Did that help?", in_reply_to="<m2@acme>"),  # out of order
        message(tmp_path, 1, "customer", "It is offline."),
        message(tmp_path, 2, "customer", "Also the light is red."),
        message(tmp_path, 4, "customer", "No, still red.", in_reply_to="<m3@acme>"),
        message(tmp_path, 5, "agent", "Then reset it.", in_reply_to="<m4@acme>"),
        message(tmp_path, 6, "agent", "Hello?", thread="<t2@acme>"),
    ]
    examples, skipped = run_builder(documents, Source(path=Path("support.mbox"), kind="email"), project)
    assert skipped == {"email: agent message without a customer message before it": 1}
    (example,) = examples
    roles = [m.role for m in example.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert example.messages[1].content == "It is offline.\n\nAlso the light is red."
    assert example.target == "Then reset it." and example.meta["turns"] == 2


def test_email_branched_thread_pairs_by_in_reply_to(tmp_path):
    project = make_project(tmp_path)
    documents = [
        message(tmp_path, 1, "customer", "First question."),
        message(tmp_path, 2, "customer", "Second question."),
        message(tmp_path, 3, "agent", "Answer to the first.", in_reply_to="<m1@acme>"),
        message(tmp_path, 4, "agent", "Answer to the second.", in_reply_to="<m2@acme>"),
    ]
    examples, _ = run_builder(documents, Source(path=Path("support.mbox"), kind="email"), project)
    assert [(e.input_text, e.target) for e in examples] == [
        ("First question.", "Answer to the first."),
        ("Second question.", "Answer to the second."),
    ]
    assert {e.source for e in examples} == {"<t1@acme>"}


# --- table ---------------------------------------------------------------------------------------


def test_table_classification_lists_sorted_labels(tmp_path):
    project = make_project(tmp_path, task="classify")
    documents = [
        row(tmp_path, "tickets.csv", 1, body="Card charged twice", category="billing"),
        row(tmp_path, "tickets.csv", 2, body="Parcel lost", category="shipping"),
        row(tmp_path, "tickets.csv", 3, body="App crashes", category="technical"),
        row(tmp_path, "tickets.csv", 4, body="No label here", category=""),
    ]
    source = Source(path=Path("tickets.csv"), kind="table", input="body", label="category")
    examples, skipped = run_builder(documents, source, project)
    assert skipped == {"table: missing label": 1}
    assert [e.label for e in examples] == ["billing", "shipping", "technical"]
    assert "one of: billing, shipping, technical." in examples[0].input_text
    assert examples[0].input_text.endswith("\n\nCard charged twice") and examples[0].target == "billing"
    with pytest.raises(BuilderError, match=r"tickets.csv.*'text'.*'body', 'category'"):
        run_builder(documents, Source(path=Path("tickets.csv"), kind="table", input="text", label="category"), project)


def test_table_fields_extract_json(tmp_path):
    project = make_project(tmp_path, task="extract")
    documents = [
        row(tmp_path, "orders.csv", 1, body="Order 12 to Paris", city="Paris", order="12"),
        row(tmp_path, "orders.csv", 2, body="Order 13", city="", order="13"),
    ]
    source = Source(path=Path("orders.csv"), kind="table", input="body", fields=["order", "city"])
    examples, _ = run_builder(documents, source, project)
    assert json.loads(examples[0].target) == {"city": "Paris", "order": "12"}
    assert examples[0].target == '{"city": "Paris", "order": "12"}'  # sorted keys
    assert json.loads(examples[1].target) == {"city": None, "order": "13"}
    assert examples[0].meta["fields"] == ["city", "order"]


# --- extraction ----------------------------------------------------------------------------------


def test_extraction_nested_gold_with_schema(tmp_path):
    project = make_project(tmp_path, task="extract")
    records = [
        {"key": "r1", "ocr_text": "ACME STORE\nTOTAL 9.00", "entities": {"company": "ACME", "total": "9.00"}},
        {"key": "r2", "ocr_text": "SHOP\n2018-12-25", "entities": {"company": "SHOP", "date": "2018-12-25"}},
    ]
    documents = [
        Document(
            text=json.dumps(r),
            source_path=str(tmp_path / "r.jsonl"),
            source_sha256="d" * 64,
            locator=f"line {i}",
            fields=r,
        )
        for i, r in enumerate(records, 1)
    ]
    source = Source(path=Path("r.jsonl"), kind="extraction", input="ocr_text", fields=["entities"])
    examples, _ = run_builder(documents, source, project)
    assert json.loads(examples[0].target) == {"company": "ACME", "date": None, "total": "9.00"}
    prompt = examples[0].input_text
    assert '"required": ["company", "date", "total"]' in prompt and prompt.endswith("ACME STORE\nTOTAL 9.00")
    # Without `fields`, the one column holding an object is the gold.
    auto, _ = run_builder(documents, Source(path=Path("r.jsonl"), kind="extraction", input="ocr_text"), project)
    assert [e.target for e in auto] == [e.target for e in examples]


def test_extraction_without_gold_names_columns(tmp_path):
    project = make_project(tmp_path, task="extract")
    documents = [row(tmp_path, "x.csv", 1, text="hello", a="1", b="2")]
    with pytest.raises(BuilderError, match=r"x.csv: say which columns.*'text', 'a', 'b'"):
        run_builder(documents, Source(path=Path("x.csv"), kind="extraction", input="text"), project)


# --- documents -----------------------------------------------------------------------------------

DOC = """# Acme Thermo T5

Intro paragraph about the thermostat and why it matters to every household.

## Installation

{install}

## Troubleshooting

### Offline

If the thermostat is offline, restart the router and then the thermostat.
"""


def test_chunks_follow_headings_with_overlap_and_limit(tmp_path):
    install = "\n\n".join(f"Step {i}: connect wire number {i} to terminal {i} and check it twice." for i in range(30))
    document = Document(
        text=DOC.format(install=install),
        source_path=str(tmp_path / "docs/t5.md"),
        source_sha256="e" * 64,
        title="Acme Thermo T5",
    )
    chunks = chunk_documents([document], max_tokens=64, overlap=16)
    count = token_counter(None)
    assert len(chunks) > 3 and all(c.estimated for c in chunks)
    assert all(count(c.text) <= 64 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].heading_path == ["Acme Thermo T5"]
    installation = [c for c in chunks if c.heading_path == ["Acme Thermo T5", "Installation"]]
    assert len(installation) >= 2
    # A chunk continuing a section starts with the end of the previous one.
    later = installation[1]
    previous = chunks[chunks.index(later) - 1]
    assert previous.text.split()[-1] in later.text.split()[:16]
    # A heading without text of its own stays with the section under it.
    assert "## Troubleshooting\n\n### Offline\n\nIf the thermostat" in chunks[-1].text
    with pytest.raises(ValueError, match=r"prepare\.chunk\.overlap"):
        chunk_documents([document], max_tokens=64, overlap=40)


def test_chunks_with_a_real_tokenizer(tmp_path, tiny_model_dir):
    from tailorlm.prepare.builders.documents import base_tokenizer

    tokenizer = base_tokenizer(tiny_model_dir)
    assert tokenizer is not None
    install = "\n\n".join(f"Refunds are issued to the original payment method within {i} days." for i in range(20))
    document = Document(text=DOC.format(install=install), source_path=str(tmp_path / "t5.md"), source_sha256="f" * 64)
    chunks = chunk_documents([document], max_tokens=48, overlap=8, tokenizer=tokenizer)
    assert not any(c.estimated for c in chunks)
    assert all(len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 48 + 2 for c in chunks)


def test_documents_builder_makes_text_for_cpt_only(tmp_path):
    document = Document(
        text=DOC.format(install="Connect the wires."), source_path=str(tmp_path / "docs/t5.md"), source_sha256="e" * 64
    )
    source = Source(path=Path("docs"), kind="documents")
    examples, _ = run_builder(
        [document], source, make_project(tmp_path, task="cpt", chunk={"max_tokens": 32, "overlap": 4})
    )
    assert examples and all(not e.is_chat for e in examples)
    assert {e.source for e in examples} == {"docs/t5.md"}
    assert examples[0].meta["title"] == "Acme Thermo T5" and examples[0].meta["chunk"] == 0
    assert "heading_path" in examples[0].meta
    chat, _ = run_builder([document], source, make_project(tmp_path, task="chat"))
    assert chat == []


# --- dataset and registry ------------------------------------------------------------------------


def test_dataset_builder_imports_jsonl(tmp_path):
    lines = [
        {"instruction": "Say hi", "output": "Hi"},
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "source": "doc-7"},
    ]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    examples, _ = run_builder([], Source(path=Path("data.jsonl"), kind="dataset"), make_project(tmp_path))
    assert [e.target for e in examples] == ["Hi", "A"]
    assert [e.source for e in examples] == ["data.jsonl#1", "doc-7"]
    (tmp_path / "bad.jsonl").write_text('{"nope": 1}\n{"text": "fine"}\n')
    with pytest.raises(BuilderError, match=r"bad\.jsonl:1"):
        run_builder([], Source(path=Path("bad.jsonl"), kind="dataset"), make_project(tmp_path))
    lenient = Source(path=Path("bad.jsonl"), kind="dataset", skip_invalid=True)
    examples, skipped = run_builder([], lenient, make_project(tmp_path))
    assert [e.text for e in examples] == ["fine"] and skipped == {"dataset: invalid line": 1}


def test_unknown_builder_names_known_kinds():
    with pytest.raises(BuilderError, match="known: dataset, documents, email, extraction, faq, feedback, table"):
        get_builder("nope")


def test_skipped_is_not_an_example():
    assert Skipped("empty answer").reason == "empty answer"


def test_docs_table_of_kinds_is_the_registry():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "prepare.md").read_text(encoding="utf-8")
    table = doc.split("<!-- builders:start -->\n", 1)[1].split("<!-- builders:end -->", 1)[0]
    assert table == kinds_markdown() + "\n", "docs/prepare.md is stale: paste kinds_markdown() between the markers"


def test_registration_refuses_unknown_tasks_and_twins():
    with pytest.raises(ValueError, match=r"builder 'memo': tasks must be some of .*'cpt'.*\(got \['summarize'\]\)"):
        builder("memo", tasks=("summarize",))
    with pytest.raises(ValueError, match="builder 'faq' is registered twice"):
        builder("faq", tasks=("chat",))(lambda documents, source, project: iter(()))
    assert kinds_for("classify") == ["dataset", "documents", "table"]
    assert get_builder("dataset").files is not None and get_builder("documents").chunks
