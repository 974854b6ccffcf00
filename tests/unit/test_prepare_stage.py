"""The prepare stage end to end on small files the tests write: a FAQ CSV, a tickets CSV, Markdown
docs and an mbox; plus the example company under examples/acme when it is there."""

from __future__ import annotations

import csv
import io
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest
from rich.console import Console

from tailorlm.config import Project, parse_project
from tailorlm.dataset_splits import load_split
from tailorlm.ingest import ingest
from tailorlm.prepare import PrepareError, prepare
from tailorlm.progress import LogProgress
from tailorlm.registry import DatasetMeta
from tailorlm.workspace import sha256_file

ACME = Path(__file__).resolve().parents[2] / "examples" / "acme"
SPLITS = ("train", "val", "test")
CUSTOMER_EMAIL = "jane.roe@example.com"

FAQ = [
    (
        f"How do I {verb} my {thing}?",
        f"To {verb} your {thing}, open the Acme app and follow the steps under Settings. It takes about {n} minutes.",
    )
    for n, (verb, thing) in enumerate(
        [
            (v, t)
            for v in ("reset", "pair", "update", "register", "clean")
            for t in ("thermostat", "hub", "air purifier")
        ],
        start=2,
    )
]
TICKETS = {
    "billing": [
        "I was charged twice for order {n}",
        "Refund for invoice {n} has not arrived",
        "My card was declined when paying {n}",
        "Care+ subscription {n} billed after I cancelled",
    ],
    "shipping": [
        "Parcel {n} has not arrived yet",
        "Tracking for order {n} stopped updating",
        "Delivery {n} went to the wrong address",
        "Can order {n} be left at the door",
    ],
    "technical": [
        "Thermostat {n} shows error E4",
        "Hub {n} keeps dropping off the wifi",
        "App crashes when I open schedule {n}",
        "Firmware update {n} failed halfway",
    ],
}
DOC_A = """# Installing the Thermo T5

The Thermo T5 replaces most 24 V thermostats. Turn off the power at the breaker first.

## Wiring

Label each wire before you remove the old thermostat. Connect R, C, W and Y to the matching terminals.

## First start

Turn the power back on. The display shows the Acme logo, then asks for your language.
"""
DOC_B = """# Refund policy

Refunds go back to the original payment method within five business days of the return arriving.

## Exceptions

Gift cards cannot be refunded. Write to billing@acme.example with questions.
"""


def write_company(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "faq.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer", "topic"])
        for question, answer in FAQ:
            writer.writerow([question, answer, "devices"])
        writer.writerow(
            [
                "Who do I write to about my bill?",
                f"Write to billing@acme.example, or reply from {CUSTOMER_EMAIL} so we find your account.",
                "billing",
            ]
        )
    with (root / "tickets.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "subject", "body", "category", "priority"])
        openers = ["Hi there,", "Good morning team.", "Urgent!", "Dear Acme support,", "Hello again -"]
        closings = [
            "Thanks a lot.",
            "Please advise what to do next.",
            "Any ideas?",
            "Waiting for your reply.",
            "Kind regards from Lyon.",
        ]
        number = 0
        for category, bodies in TICKETS.items():
            for body in bodies:
                for variant in range(5):
                    number += 1
                    text = f"{openers[variant]} {body.format(n=1000 + 7 * number)}. {closings[(variant + 2) % 5]}"
                    writer.writerow([f"T-{number:04d}", "help", text, category, "normal"])
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "install-t5.md").write_text(DOC_A, encoding="utf-8")
    (root / "docs" / "refund-policy.md").write_text(DOC_B, encoding="utf-8")
    write_mbox(root / "support.mbox")
    return root


def _message(
    sender: str, to: str, subject: str, body: str, number: int, thread: int, reply_to: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = f"Mon, 0{thread + 1} Sep 2024 10:{number:02d}:00 +0000"
    message["Message-ID"] = f"<t{thread}m{number}@{sender.split('@')[1].rstrip('>')}>"
    if reply_to:
        message["In-Reply-To"] = reply_to
        message["References"] = reply_to
    message.set_content(body)
    return message


def write_mbox(path: Path) -> None:
    box = mailbox.mbox(str(path))
    topics = [
        "my thermostat shows error E4 after the update",
        "my parcel has not arrived after two weeks",
        "I was billed twice for Care+ this month",
        "the hub does not find my wifi network",
    ]
    for thread, topic in enumerate(topics):
        customer = f"Jane Roe <{CUSTOMER_EMAIL}>" if thread == 0 else f"Customer {thread} <c{thread}@example.org>"
        first = _message(
            customer,
            "support@acme.example",
            f"Help: {topic}",
            f"Hello,\n\n{topic}. Write me at {CUSTOMER_EMAIL} please.\n\nThanks",
            1,
            thread,
        )
        box.add(first)
        reply = _message(
            "Agent <care@acme.example>",
            customer,
            f"Re: Help: {topic}",
            f"Hello,\n\nSorry to hear that {topic}. We will fix it today.\n\nAcme Support",
            2,
            thread,
            reply_to=first["Message-ID"],
        )
        box.add(reply)
        if thread == 0:  # a second round
            again = _message(
                customer,
                "support@acme.example",
                "Re: Help",
                "It still shows E4, what now?",
                3,
                thread,
                reply_to=reply["Message-ID"],
            )
            box.add(again)
            box.add(
                _message(
                    "Agent <care@acme.example>",
                    customer,
                    "Re: Help",
                    "Then hold the reset button for ten seconds.",
                    4,
                    thread,
                    reply_to=again["Message-ID"],
                )
            )
    box.flush()
    box.close()


def make_project(root: Path, base_model: Path, **overrides) -> Project:
    data = {
        "project": "acme",
        "base_model": str(base_model),
        "task": "chat",
        "system_prompt": "You are Acme's support assistant.",
        "sources": [
            {"path": "faq.csv", "kind": "faq"},
            {"path": "support.mbox", "kind": "email"},
            {"path": "docs", "kind": "documents"},
        ],
        "prepare": {"split": {"test": 0.2, "val": 0.1}, "chunk": {"max_tokens": 64, "overlap": 8}},
    }
    data.update(overrides)
    return parse_project(data, root=root)


@pytest.fixture
def company(tmp_path: Path) -> Path:
    return write_company(tmp_path / "company")


def all_examples(workspace, dataset) -> list:
    return [example for split in SPLITS for example in load_split(workspace, dataset, split)]


def test_chat_dataset_written_registered_and_carded(workspace, company, tiny_model_dir):
    log = io.StringIO()
    progress = LogProgress(Console(file=log, width=200), interval=0)
    result = prepare(workspace, make_project(company, tiny_model_dir), progress=progress, ingest=ingest)
    messages = log.getvalue().splitlines()
    assert not result.skipped and messages[0] == "ingesting faq.csv"
    assert any(line.startswith("ingest ") and " files (100%)" in line for line in messages), messages
    assert result.dataset.id == "dataset-acme-v1" and result.path == workspace.dataset_dir("acme", "v1")
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "card.json", "card.md", "chunks.jsonl"):
        assert (result.path / name).is_file(), name
    examples = all_examples(workspace, result.dataset)
    assert len(examples) == sum(result.counts.values()) == len(FAQ) + 1 + 4
    assert all(e.is_chat and e.messages[0].content == "You are Acme's support assistant." for e in examples)
    # Multi-round thread → one multi-turn conversation.
    assert any(sum(m.role == "assistant" for m in e.messages) == 2 for e in examples)

    card = json.loads((result.path / "card.json").read_text())
    assert card == result.card
    assert card["counts"] == {**result.counts, "total": len(examples)}
    assert (
        card["per_file"]["faq.csv"]["train"] + card["per_file"]["faq.csv"]["val"] + card["per_file"]["faq.csv"]["test"]
        == len(FAQ) + 1
    )
    assert "support.mbox" in card["per_file"]
    tokens = card["tokens"]
    assert tokens["counted_with"].startswith("the base model's tokenizer")
    assert tokens["all"]["count"] == len(examples)
    assert tokens["all"]["min"] <= tokens["all"]["p50"] <= tokens["all"]["p90"] <= tokens["all"]["max"]
    assert 0 <= tokens["all"]["over_max_length_share"] <= 1
    files = {f["path"]: f["sha256"] for source in card["sources"] for f in source["files"]}
    assert files["faq.csv"] == sha256_file(company / "faq.csv")
    assert files["docs/install-t5.md"] == sha256_file(company / "docs" / "install-t5.md")
    assert card["pii"]["counts"]["EMAIL"] >= 2
    assert card["chunks"] >= 2 and card["version"] == "v1" and card["settings_hash"] and card["created_at"]
    assert set(card["contamination"]["counts"]) == {"train-val", "train-test"}
    assert "dedup" in card and "filters" in card and card["languages"].get("en")
    markdown = (result.path / "card.md").read_text()
    for section in ("Motivation", "Composition", "Collection", "Preprocessing", "Uses", "Distribution", "Maintenance"):
        assert f"## {section}" in markdown

    # PII redacted in the dataset and the chunks; the company's own address too (it is an e-mail).
    everything = "".join((result.path / f"{s}.jsonl").read_text() for s in SPLITS)
    everything += (result.path / "chunks.jsonl").read_text()
    assert CUSTOMER_EMAIL not in everything and "[EMAIL]" in everything

    # Registry and lineage: the dataset's parents are the document artifacts; the audit has the event.
    stored = workspace.registry.get(result.dataset.id)
    assert stored.key == result.dataset.key and stored.meta_as(DatasetMeta).counts == result.counts
    parents = workspace.registry.parents(result.dataset.id)
    assert parents and {p.kind for p in parents} == {"document"}
    assert any(e["action"] == "prepare" and result.dataset.id in e["outputs"] for e in workspace.audit.events())


def test_no_source_on_two_sides(workspace, company, tiny_model_dir):
    result = prepare(workspace, make_project(company, tiny_model_dir), ingest=ingest)
    sides: dict[str, set[str]] = {}
    for split in SPLITS:
        for example in load_split(workspace, result.dataset, split):
            sides.setdefault(example.source, set()).add(split)
    assert sides and all(len(names) == 1 for names in sides.values())


def test_skip_when_unchanged_new_version_when_settings_or_files_change(workspace, company, tiny_model_dir):
    project = make_project(company, tiny_model_dir)
    first = prepare(workspace, project, ingest=ingest)
    again = prepare(workspace, project, ingest=ingest)
    assert again.skipped and again.dataset.id == first.dataset.id and again.counts == first.counts
    assert again.card["version"] == "v1"

    changed = make_project(
        company,
        tiny_model_dir,
        prepare={"split": {"test": 0.2, "val": 0.1, "seed": 1}, "chunk": {"max_tokens": 64, "overlap": 8}},
    )
    second = prepare(workspace, changed, ingest=ingest)
    assert not second.skipped and second.dataset.version == "v2" and second.dataset.key != first.dataset.key

    with (company / "faq.csv").open("a", encoding="utf-8") as handle:
        handle.write("Is there a night mode?,Yes: the display dims itself between 10 p.m. and 6 a.m.,devices\n")
    third = prepare(workspace, changed, ingest=ingest)
    assert third.dataset.version == "v3" and third.counts != second.counts

    forced = prepare(workspace, changed, force=True, ingest=ingest)
    assert not forced.skipped and forced.dataset.version == "v4"
    assert (workspace.dataset_dir("acme", "v1") / "train.jsonl").is_file()  # old versions are kept


def test_classify_dataset_is_stratified(workspace, company, tiny_model_dir):
    project = make_project(
        company,
        tiny_model_dir,
        task="classify",
        sources=[{"path": "tickets.csv", "kind": "table", "input": "body", "label": "category"}],
    )
    result = prepare(workspace, project, ingest=ingest)
    examples = all_examples(workspace, result.dataset)
    dropped = sum(result.card["dedup"][k] for k in ("exact", "near")) + sum(result.card["filters"]["dropped"].values())
    assert len(examples) + dropped == 60 and len(examples) >= 50
    assert all(e.label in TICKETS for e in examples)
    assert set(result.card["labels"]) == set(TICKETS)
    for split in SPLITS:
        assert all(result.card["labels"][label][split] >= 1 for label in TICKETS), split
    assert result.card["split"]["stratified"] is True
    assert result.dataset.meta_as(DatasetMeta).labels == sorted(TICKETS)
    assert "one of: billing, shipping, technical." in examples[0].input_text


def test_pseudonyms_consistent_within_a_thread(workspace, company, tiny_model_dir):
    project = make_project(
        company, tiny_model_dir, prepare={"pii": "pseudonymize"}, sources=[{"path": "support.mbox", "kind": "email"}]
    )
    result = prepare(workspace, project, ingest=ingest)
    conversation = next(
        e for e in all_examples(workspace, result.dataset) if sum(m.role == "assistant" for m in e.messages) == 2
    )
    assert "[EMAIL_1]" in conversation.messages[1].content and CUSTOMER_EMAIL not in conversation.messages[1].content


def test_cpt_dataset_from_documents(workspace, company, tiny_model_dir):
    project = make_project(
        company,
        tiny_model_dir,
        task="cpt",
        sources=[{"path": "docs", "kind": "documents"}],
        prepare={"split": {"test": 0, "val": 0}, "chunk": {"max_tokens": 32, "overlap": 4}},
    )
    result = prepare(workspace, project, ingest=ingest)
    examples = all_examples(workspace, result.dataset)
    assert examples and all(not e.is_chat for e in examples)
    assert {e.meta["file"] for e in examples} == {"docs/install-t5.md", "docs/refund-policy.md"}
    assert all({"title", "heading_path", "chunk"} <= set(e.meta) for e in examples)
    assert result.card["format"] == "text" and not (result.path / "chunks.jsonl").exists()


def test_extraction_from_jsonl(workspace, tmp_path, tiny_model_dir):
    records = [
        {
            "key": f"r{i}",
            "ocr_text": f"SHOP {i}\nNO {i} MAIN STREET\nTOTAL {i}.50",
            "entities": {"company": f"SHOP {i}", "total": f"{i}.50"},
        }
        for i in range(12)
    ]
    root = tmp_path / "receipts"
    root.mkdir()
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    project = make_project(
        root,
        tiny_model_dir,
        task="extract",
        prepare={"dedup": {"near_threshold": None}},
        sources=[{"path": "train.jsonl", "kind": "extraction", "input": "ocr_text", "fields": ["entities"]}],
    )
    result = prepare(workspace, project, ingest=ingest)
    examples = all_examples(workspace, result.dataset)
    assert len(examples) == 12 and all(e.meta["fields"] == ["company", "total"] for e in examples)
    by_source = {e.source: e for e in examples}
    assert json.loads(by_source["train.jsonl#line 4"].target) == {"company": "SHOP 3", "total": "3.50"}


def test_dataset_source_imported_cleaned_and_redacted(workspace, tmp_path, tiny_model_dir):
    root = tmp_path / "imported"
    root.mkdir()
    rows = [
        {"instruction": f"Question number {i}?", "output": f"Answer {i}: write to {CUSTOMER_EMAIL}."} for i in range(6)
    ] + [{"text": "not a chat example"}]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:6]), encoding="utf-8")
    project = make_project(root, tiny_model_dir, sources=[{"path": "data.jsonl", "kind": "dataset"}])
    result = prepare(workspace, project)  # a dataset source is read by its builder: no ingest step to pass
    examples = all_examples(workspace, result.dataset)
    assert len(examples) == 6 and all("[EMAIL]" in e.target and CUSTOMER_EMAIL not in e.target for e in examples)
    sha = result.card["sources"][0]["files"][0]["sha256"]
    assert sha == sha256_file(root / "data.jsonl")
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(PrepareError, match=r"(?s)task .chat. trains on chat examples.*data\.jsonl: text examples: 1"):
        prepare(workspace, project, ingest=ingest)


def test_person_names_redacted_with_a_configured_ner_model(workspace, tmp_path, tiny_model_dir):
    spacy = pytest.importorskip("spacy")
    root = tmp_path / "names"
    root.mkdir()
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Jane Doe"}])
    nlp.to_disk(root / "ner")
    rows = [{"instruction": f"Who handles case {i}?", "output": f"Jane Doe handles case {i}."} for i in range(6)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    project = make_project(
        root, tiny_model_dir, sources=[{"path": "data.jsonl", "kind": "dataset"}], prepare={"pii_ner_model": "ner"}
    )
    result = prepare(workspace, project, ingest=ingest)
    examples = all_examples(workspace, result.dataset)
    assert all("Jane Doe" not in e.target and "[PERSON]" in e.target for e in examples)
    assert result.card["pii"]["counts"]["PERSON"] == 6


# --- bad input: a clear error, nothing written ---------------------------------------------------


def nothing_written(workspace) -> bool:
    return not workspace.registry.find("dataset") and not any((workspace.root / "datasets").rglob("*.jsonl"))


def test_missing_column_is_named(workspace, company, tiny_model_dir):
    project = make_project(company, tiny_model_dir, sources=[{"path": "faq.csv", "kind": "faq", "question": "frage"}])
    with pytest.raises(PrepareError) as error:
        prepare(workspace, project, ingest=ingest)
    text = str(error.value)
    assert "faq.csv" in text and "'frage'" in text and "'question', 'answer', 'topic'" in text
    assert nothing_written(workspace)


def test_unknown_source_path_is_named(workspace, company, tiny_model_dir):
    project = make_project(
        company,
        tiny_model_dir,
        sources=[{"path": "faq.csv", "kind": "faq"}, {"path": "nowhere/tickets.csv", "kind": "table"}],
    )
    with pytest.raises(PrepareError, match=r"sources\[1\]\.path: not found: nowhere/tickets.csv"):
        prepare(workspace, project, ingest=ingest)
    assert nothing_written(workspace)


def test_empty_result_names_the_sources(workspace, company, tiny_model_dir):
    project = make_project(
        company, tiny_model_dir, prepare={"min_chars": 10_000}, sources=[{"path": "faq.csv", "kind": "faq"}]
    )
    with pytest.raises(PrepareError, match=r"no examples from the sources faq.csv \(faq\).*too_short"):
        prepare(workspace, project, ingest=ingest)
    assert nothing_written(workspace)


def test_kind_that_does_not_fit_the_task(workspace, company, tiny_model_dir):
    project = make_project(company, tiny_model_dir, task="classify", sources=[{"path": "faq.csv", "kind": "faq"}])
    with pytest.raises(
        PrepareError,
        match=r"sources\[0\]\.kind: 'faq' is not a source for task 'classify' \(allowed: dataset, documents, table\)",
    ):
        prepare(workspace, project, ingest=ingest)


def test_failed_file_stops_everything(workspace, company, tiny_model_dir):
    (company / "docs" / "broken.pdf").write_bytes(b"this is not a pdf at all")
    with pytest.raises(PrepareError, match=r"broken\.pdf"):
        prepare(workspace, make_project(company, tiny_model_dir), ingest=ingest)
    assert nothing_written(workspace)


def test_file_sources_take_the_ingest_step_from_the_caller(workspace, company, tiny_model_dir):
    """Stages don't import each other: prepare reads files only through the `ingest` it is given."""
    project = make_project(company, tiny_model_dir, sources=[{"path": "faq.csv", "kind": "faq"}])
    with pytest.raises(TypeError, match=r"sources\[0\] \(faq.csv\) must be ingested first: .*ingest=tailorlm"):
        prepare(workspace, project)
    assert nothing_written(workspace)
    called = []

    def counting_ingest(ws, paths, **options):  # options: `progress`, passed on
        called.append([Path(p).name for p in paths])
        return ingest(ws, paths, **options)

    assert prepare(workspace, project, ingest=counting_ingest).counts["train"] > 0
    assert called == [["faq.csv"]]


# --- real public data (integration) ---------------------------------------------------------------


@pytest.mark.integration
def test_real_faq_and_policies(workspace, shared_data):
    faq = shared_data / "faq_official" / "faq_covidbert_en.csv"
    policies = shared_data / "site_policy"
    if not faq.is_file() or not policies.is_dir():
        pytest.skip("faq_official or site_policy missing from the shared data")
    chat = parse_project(
        {
            "project": "health-faq",
            "base_model": "/nonexistent",
            "task": "chat",
            "sources": [{"path": str(faq), "kind": "faq"}],
        },
        root=shared_data,
    )
    result = prepare(workspace, chat, ingest=ingest)
    card = result.card
    assert card["counts"]["total"] >= 180 and card["counts"]["test"] >= 10
    assert card["tokens"]["counted_with"].startswith("an estimate")
    cpt = parse_project(
        {
            "project": "policies",
            "base_model": "/nonexistent",
            "task": "cpt",
            "sources": [{"path": str(policies), "kind": "documents"}],
        },
        root=shared_data,
    )
    texts = prepare(workspace, cpt, ingest=ingest)
    assert texts.card["format"] == "text" and texts.card["counts"]["total"] >= 100
    assert texts.card["tokens"]["all"]["max"] <= 512 + 16  # chunk.max_tokens (estimated) + the join margin


# --- the example company -------------------------------------------------------------------------


@pytest.mark.skipif(
    not (ACME / "faq.csv").is_file() or not (ACME / "support.mbox").is_file() or not (ACME / "tickets.csv").is_file(),
    reason="examples/acme is not there yet",
)
def test_acme_chat_and_classify(workspace, tiny_model_dir):
    chat = parse_project(
        {
            "project": "acme-support",
            "base_model": str(tiny_model_dir),
            "task": "chat",
            "system_prompt": "You are Acme's support assistant.",
            "sources": [{"path": "faq.csv", "kind": "faq"}, {"path": "support.mbox", "kind": "email"}],
        },
        root=ACME,
    )
    result = prepare(workspace, chat, ingest=ingest)
    card = result.card
    assert card["counts"]["total"] >= 100 and all(card["counts"][s] > 0 for s in SPLITS)
    assert {"faq.csv", "support.mbox"} <= set(card["per_file"])
    assert card["tokens"]["all"]["count"] == card["counts"]["total"]

    classify = parse_project(
        {
            "project": "acme-tickets",
            "base_model": str(tiny_model_dir),
            "task": "classify",
            "sources": [{"path": "tickets.csv", "kind": "table", "input": "body", "label": "category"}],
        },
        root=ACME,
    )
    tickets = prepare(workspace, classify, ingest=ingest)
    labels = tickets.card["labels"]
    assert len(labels) >= 3 and tickets.card["counts"]["total"] >= 200
    for split in SPLITS:
        assert all(counts[split] > 0 for counts in labels.values() if sum(counts.values()) >= 20), split
