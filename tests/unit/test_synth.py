"""Synthetic Q&A (`tailorlm.prepare.synth`): reply parsing, grounding, RAFT turns and question dedup on
hand-written teacher replies; the protocol (one request per chunk, the state file, resume, the host
check, an endpoint that is down) against a real `tailorlm serve` on loopback with the tiny model; and
the whole path to a dataset through real HTTP with a teacher whose content is scripted (see
`test_prepare_builds_synthetic_examples_from_teacher_json` for why)."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from helpers.serve import RecordingMiddleware, ServerThread, scripted_teacher, single_torch_thread
from tailorlm.config import Project, parse_project
from tailorlm.dataset_splits import load_split
from tailorlm.ingest import ingest
from tailorlm.prepare import PrepareError, prepare
from tailorlm.prepare.builders.documents import Chunk
from tailorlm.prepare.synth import (
    QAPair,
    build_examples,
    chunk_hash,
    grounding,
    parse_reply,
    raft_user_turn,
    read_state,
    reply_budget,
    state_file,
    synthesize,
)
from tailorlm.progress import LogProgress, Task

REFUNDS = (
    "Refunds go back to the original payment method within 5 business days of the return arriving. "
    "Gift cards cannot be refunded."
)
WIRING = "Label each wire before you remove the old thermostat. Connect R, C, W and Y to the matching terminals."
POWER = "The Thermo T5 replaces most 24 V thermostats. Turn off the power at the breaker first."
PRICES = "The Care+ plan costs 1,500 EUR per year for up to 40 devices, billed every January."
DISPLAY = "Turn the power back on. The display shows the Acme logo, then asks for your language."


def make_chunk(text: str, document: str = "doc-a", index: int = 0, title: str = "Acme") -> Chunk:
    return Chunk(
        text=text,
        document_id=document,
        source_path=f"/company/{document}.md",
        locator="",
        title=title,
        heading_path=[title],
        index=index,
        tokens=len(text.split()),
    )


CHUNKS = [
    make_chunk(REFUNDS, "refunds", 0, "Refund policy"),
    make_chunk(WIRING, "install", 0, "Installing the T5"),
    make_chunk(POWER, "install", 1, "Installing the T5"),
    make_chunk(PRICES, "care", 0, "Care+"),
    make_chunk(DISPLAY, "install", 2, "Installing the T5"),
]


# --- parsing replies -----------------------------------------------------------------------------

PAIR = '{"question": "When do refunds arrive?", "answer": "Within 5 business days."}'


@pytest.mark.parametrize(
    ("reply", "pairs", "malformed"),
    [
        (f"[{PAIR}]", 1, 0),
        (f"Here you go:\n```json\n[{PAIR}, {PAIR}]\n```\nHope this helps!", 2, 0),
        (f"```\n[{PAIR}]\n```", 1, 0),
        (f"Sure! [{PAIR}] Let me know if you need more.", 1, 0),
        (f'{{"questions": [{PAIR}]}}', 1, 0),
        (PAIR, 1, 0),
        (f"[{PAIR},]", 1, 0),  # trailing comma
        (f'I made [2] pairs: [{PAIR}, {{"Question": "Cost?", "Answer": 1500}}]', 2, 0),  # a bracket before the JSON
        (f'[{PAIR}, {{"question": "Who?"}}, {{"question": "", "answer": "x"}}, "text"]', 1, 3),
        (f'[{PAIR}, {PAIR}, {{"question": "How long is the warra', 2, 0),  # cut short by max_tokens
        (f'<think>Maybe [{{"question": "draft"}}]?</think>\n[{PAIR}]', 1, 0),  # a reasoning model
    ],
)
def test_replies_are_parsed_robustly(reply: str, pairs: int, malformed: int) -> None:
    parsed = parse_reply(reply)
    assert parsed.parsed and len(parsed.pairs) == pairs and parsed.malformed == malformed
    assert parsed.pairs[0] == QAPair("When do refunds arrive?", "Within 5 business days.")


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I can't help with that.",
        "[1, 2, 3]",
        '{"note": "no pairs"}',
        "[{'question': 'single quotes'}",
        "```json\n```",
    ],
)
def test_replies_without_question_answer_json_are_unparseable(reply: str) -> None:
    parsed = parse_reply(reply)
    assert not parsed.parsed and parsed.pairs == []


# --- grounding -----------------------------------------------------------------------------------


def test_answers_drawn_from_the_chunk_are_grounded() -> None:
    assert grounding("Refunds are issued to the original payment method within 5 business days.", REFUNDS).passes()
    assert grounding("Gift cards can't be refunded.", REFUNDS).passes()
    assert grounding("It costs 1500 EUR a year and covers up to 40 devices.", PRICES).passes()  # 1,500 = 1500


def test_answers_the_chunk_does_not_support_are_not() -> None:
    made_up = grounding("Call our hotline any weekday morning and an agent will process it.", REFUNDS)
    assert made_up.score < 0.3 and not made_up.passes()
    wrong_number = grounding("Refunds go back to the original payment method within 7 business days.", REFUNDS)
    assert wrong_number.score > 0.8 and wrong_number.missing_numbers == ("7",) and not wrong_number.passes()
    assert grounding("Yes.", REFUNDS).score == 0.0


# --- building examples (no calls) ---------------------------------------------------------------


def reply(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"question": q, "answer": a} for q, a in pairs])


def test_replies_become_grounded_deduplicated_examples() -> None:
    replies = {
        chunk_hash(CHUNKS[0]): reply(
            ("How long do refunds take?", "Refunds go back to the original payment method within 5 business days."),
            ("Can gift cards be refunded?", "No, gift cards cannot be refunded."),
            ("Who pays return shipping?", "Acme pays for every return label worldwide."),  # not in the chunk
        ),
        chunk_hash(CHUNKS[3]): reply(
            ("How long do refunds take?", "The Care+ plan is billed every January."),  # the same question again
            ("What does Care+ cost?", "1,500 EUR per year for up to 40 devices."),
            ("What does Care+ cost per year?", "It costs 1,500 EUR per year."),  # one more than per_chunk
        ),
        chunk_hash(CHUNKS[4]): "The display shows the logo.",  # no JSON
    }
    synthesis = build_examples(
        CHUNKS, replies, per_chunk=2, system_prompt="You are Acme support.", teacher="teacher-7b"
    )
    counts = synthesis.counts
    assert (counts["pairs"], counts["ungrounded"], counts["duplicates"], counts["unparseable"]) == (4, 0, 1, 1)
    assert [e.input_text for e in synthesis.examples] == [
        "How long do refunds take?",
        "Can gift cards be refunded?",
        "What does Care+ cost?",
    ]
    assert synthesis.per_chunk == [2, 0, 0, 1, 0]
    first = synthesis.examples[0]
    assert first.source == "refunds" and first.prompt[0]["content"] == "You are Acme support."
    assert first.meta["synthetic"] is True and first.meta["chunk"] == 0 and first.meta["teacher"] == "teacher-7b"
    assert synthesis.skips() == {
        "synthetic: teacher reply without question/answer JSON": 1,
        "synthetic: duplicate question": 1,
    }
    dropped = build_examples(CHUNKS, {chunk_hash(CHUNKS[0]): replies[chunk_hash(CHUNKS[0])]}, per_chunk=3)
    assert dropped.counts["ungrounded"] == 1 and len(dropped.examples) == 2


def test_raft_turns_hold_the_golden_chunk_among_k_others_shuffled_by_seed() -> None:
    turns = [raft_user_turn(f"Question {n}?", CHUNKS, 0, 2, seed=7) for n in range(8)]
    for n, turn in enumerate(turns):
        assert turn.endswith(f"Question: Question {n}?") and REFUNDS in turn
        assert len(re.findall(r"^\[\d\] ", turn, re.MULTILINE)) == 3
        assert sum(chunk.text in turn for chunk in CHUNKS) == 3
    assert turns == [raft_user_turn(f"Question {n}?", CHUNKS, 0, 2, seed=7) for n in range(8)]  # deterministic
    assert turns != [raft_user_turn(f"Question {n}?", CHUNKS, 0, 2, seed=8) for n in range(8)]
    golden_places = {turn.index(REFUNDS) < turn.index("[2]") for turn in turns}
    assert golden_places == {True, False}  # the golden chunk is not always first
    assert sum(chunk.text in raft_user_turn("Q?", CHUNKS[:2], 1, 5, seed=1) for chunk in CHUNKS) == 2


def test_raft_examples_keep_the_plain_question_for_dedup() -> None:
    replies = {chunk_hash(CHUNKS[0]): reply(("Can gift cards be refunded?", "No, gift cards cannot be refunded."))}
    [example] = build_examples(CHUNKS, replies, per_chunk=1, distractors=2, seed=3).examples
    assert example.meta["question"] == "Can gift cards be refunded?" and example.meta["distractors"] == 2
    assert example.input_text.startswith("Documents:\n\n[1] ")


# --- the protocol against a real server ----------------------------------------------------------


class Recorder(RecordingMiddleware):
    """The recording middleware, plus which passages were asked about."""

    def asked_since(self, start: int) -> list[str]:
        """The passages asked about in the requests after the first `start`."""
        passages = [re.search(r"<<<\n(.*)\n>>>", b["messages"][-1]["content"], re.S) for b in self.bodies[start:]]
        return [match.group(1) if match else "" for match in passages]


@pytest.fixture(scope="module")
def teacher(tiny_model_dir: Path) -> Iterator[tuple[str, Recorder]]:
    """`tailorlm serve`'s app serving the tiny model as `base` on a free loopback port."""
    from tailorlm.serve.app import create_app
    from tailorlm.serve.engine import Engine
    from tailorlm.serve.limits import Limits

    with single_torch_thread():
        engine = Engine(tiny_model_dir, device="cpu", max_batch_size=4, threads=1)
        recorder = Recorder(create_app(engine, auth=None, limits=Limits(max_tokens_cap=8), request_log=None))
        try:
            with ServerThread(recorder) as server:
                yield f"{server.url}/v1", recorder
        finally:
            engine.close()


def synth_project(root: Path, url: str, model: str | None = "base", per_chunk: int = 2, **extra: Any) -> Project:
    return parse_project(
        {
            "project": "acme",
            "base_model": str(root / "no-model"),
            "prepare": {"synthesize": {"teacher": url, "model": model, "per_chunk": per_chunk}},
            **extra,
        },
        root=root,
    )


def test_each_chunk_is_asked_once_and_a_second_run_asks_nothing(teacher, workspace, tmp_path):
    url, recorder = teacher
    project = synth_project(tmp_path, url)
    chunks = [*CHUNKS[:4], make_chunk(REFUNDS, "refunds-copy", 0, "Refund policy")]  # the same text twice
    log = io.StringIO()
    start = len(recorder.bodies)
    first = synthesize(workspace, project, chunks, progress=LogProgress(Console(file=log, width=200), interval=0))
    events = [line.split(" (")[0] for line in log.getvalue().splitlines()]
    asked = recorder.asked_since(start)
    assert sorted(asked) == sorted(c.text for c in CHUNKS[:4])  # the copy is not asked again
    assert all(b["model"] == "base" and b["max_tokens"] == reply_budget(2) for b in recorder.bodies[start:])
    assert "4 call(s)" in events[0]  # the estimate comes first
    assert events[1:5] == [f"synthesize: {i}/4 chunks" for i in range(1, 5)]
    # A random tiny model writes no JSON: every reply is counted as unparseable and skipped.
    assert first.counts["calls"] == 4 and first.counts["unparseable"] == 5 and first.examples == []
    assert first.skips() == {"synthetic: teacher reply without question/answer JSON": 5}
    assert first.state_file == state_file(workspace, "base", 2)
    rows = [json.loads(line) for line in first.state_file.read_text().splitlines()]
    assert sorted(row["chunk"] for row in rows) == sorted({chunk_hash(c) for c in chunks})
    assert all(row["completion_tokens"] is not None and row["finish_reason"] for row in rows)

    again = synthesize(workspace, project, chunks, progress=LogProgress(Console(file=log, width=200), interval=0))
    assert len(recorder.bodies) == start + 4  # no request at all
    assert again.counts["calls"] == 0 and again.counts["cached"] == 4
    assert "0 call(s)" in log.getvalue().splitlines()[-2]
    assert again.counts["unparseable"] == 5


class CtrlCAfter:
    """A reporter whose task is interrupted (as by Ctrl-C) after `n` replies."""

    def __init__(self, n: int) -> None:
        self.n = n

    def say(self, message: Any) -> None:
        pass

    def task(self, description: str, total: int | None, *, completed: int = 0, unit: str = "") -> Task:
        limit = self.n

        class Interrupting:
            count = 0

            def advance(self, n: int = 1, **fields: Any) -> None:
                self.count += n
                if self.count == limit:
                    raise KeyboardInterrupt

            def done(self) -> None:
                pass

            def __enter__(self) -> Interrupting:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

        return Interrupting()


def test_an_interrupted_run_resumes_with_the_remaining_chunks(teacher, workspace, tmp_path):
    url, recorder = teacher
    project = synth_project(tmp_path, url, per_chunk=3)

    start = len(recorder.bodies)
    with pytest.raises(KeyboardInterrupt):
        synthesize(workspace, project, CHUNKS, progress=CtrlCAfter(2), concurrency=1)
    first = recorder.asked_since(start)
    path = state_file(workspace, "base", 3)
    assert len(first) == 2 and len(read_state(path)) == 2
    with path.open("a") as handle:  # a crash in the middle of writing a line
        handle.write('{"chunk": "abc", "rep')

    start = len(recorder.bodies)
    resumed = synthesize(workspace, project, CHUNKS, concurrency=3)
    assert sorted(recorder.asked_since(start)) == sorted(c.text for c in CHUNKS if c.text not in first)
    assert resumed.counts["cached"] == 2 and resumed.counts["calls"] == 3
    assert len(read_state(path)) == 5 and all(json.loads(line) for line in path.read_text().splitlines())


def test_a_teacher_host_outside_the_allowlist_is_refused_before_any_call(workspace, tmp_path):
    project = synth_project(tmp_path, "http://teacher.not-allowlisted.example:8000/v1")
    with pytest.raises(PrepareError, match=r"prepare\.synthesize\.teacher: .*not-allowlisted.*allow_hosts"):
        synthesize(workspace, project, CHUNKS)
    assert not (workspace.cache_dir / "synth").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once closed


def test_a_teacher_that_is_down_is_named_and_what_was_answered_is_kept(teacher, workspace, tmp_path):
    url, _ = teacher
    synthesize(workspace, synth_project(tmp_path, url), CHUNKS[:2])
    down = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(PrepareError, match=rf"teacher at {re.escape(down)} failed: APIConnectionError.*2 of 5 chunk"):
        synthesize(workspace, synth_project(tmp_path, down), CHUNKS)
    assert len(read_state(state_file(workspace, "base", 2))) == 2
    with pytest.raises(PrepareError, match=rf"endpoint {re.escape(down)} can't be reached"):
        synthesize(workspace, synth_project(tmp_path, down, model=None), CHUNKS)


def test_a_chunk_too_long_for_the_teacher_is_refused_and_counted(teacher, workspace, tmp_path):
    url, _ = teacher
    long = make_chunk(" ".join(["thermostat wiring terminal"] * 400), "manual", 0, "Manual")
    synthesis = synthesize(workspace, synth_project(tmp_path, url), [CHUNKS[0], long])
    assert synthesis.counts["refused"] == 1 and synthesis.counts["calls"] == 2
    assert synthesis.skips()["synthetic: chunk refused by the teacher"] == 1
    assert len(read_state(synthesis.state_file)) == 1  # asked again next time
    with pytest.raises(PrepareError, match="refused every request: 400"):
        synthesize(workspace, synth_project(tmp_path, url, per_chunk=1), [long])


# --- the whole path with scripted teacher content ------------------------------------------------


def test_prepare_builds_synthetic_examples_from_teacher_json(workspace, tmp_path):
    """A random tiny model never writes valid JSON, and `tailorlm serve` has no way to make it return
    fixed text, so this teacher's *content* is scripted by a small FastAPI app. The HTTP, the `openai`
    client, the synth code and the prepare stage around it are the real ones."""
    company = tmp_path / "company"
    (company / "docs").mkdir(parents=True)
    (company / "docs" / "refunds.md").write_text(f"# Refund policy\n\n{REFUNDS}\n", encoding="utf-8")
    (company / "docs" / "install.md").write_text(f"# Installing the T5\n\n{POWER}\n\n{WIRING}\n", encoding="utf-8")
    (company / "docs" / "care.md").write_text(f"# Care+\n\n{PRICES}\n", encoding="utf-8")

    def answer(prompt: str) -> str:
        if "Gift cards" in prompt:
            pairs = [
                (
                    "How long does a refund take?",
                    "Refunds go back to the original payment method within 5 business days.",
                ),
                ("Can I get my money back for a gift card?", "No. Gift cards cannot be refunded."),
            ]
            return f"Here are the pairs:\n```json\n{reply(*pairs)}\n```"
        if "24 V" in prompt:
            pairs = [
                ("Which thermostats does the T5 replace?", "The Thermo T5 replaces most 24 V thermostats."),
                ("What must I do before installing the T5?", "Turn off the power at the breaker first."),
                ("How long does installing take?", "About 45 minutes."),  # not in the document
            ]
            return reply(*pairs)
        return "I could not find anything to ask about this passage."

    with ServerThread(scripted_teacher(answer)) as server:
        project = parse_project(
            {
                "project": "acme",
                "base_model": str(tmp_path / "no-model"),
                "system_prompt": "You are Acme support.",
                "sources": [{"path": "docs", "kind": "documents"}],
                "prepare": {
                    "split": {"test": 0, "val": 0},
                    "synthesize": {"teacher": f"{server.url}/v1", "per_chunk": 3},
                    "pii_ner_model": "off",  # the small English pipeline tags "Gift" (of "Gift cards") as a name
                },
            },
            root=company,
        )
        log = io.StringIO()
        result = prepare(
            workspace, project, progress=LogProgress(Console(file=log, width=200), interval=0), ingest=ingest
        )
        said = log.getvalue().splitlines()

    examples = load_split(workspace, result.dataset, "train")
    assert sorted(e.input_text for e in examples) == [
        "Can I get my money back for a gift card?",
        "How long does a refund take?",
        "What must I do before installing the T5?",
        "Which thermostats does the T5 replace?",
    ]
    documents = {e.meta["file"]: e.source for e in examples}
    assert set(documents) == {"docs/refunds.md", "docs/install.md"}
    assert all(e.meta["synthetic"] and e.meta["teacher"] == "scripted" for e in examples)
    assert all(e.prompt[0]["content"] == "You are Acme support." for e in examples)
    assert any(m.startswith("synthesizing 3 Q&A per chunk with scripted") and "3 call(s)" in m for m in said)
    card = result.card
    assert card["sources"][0]["examples"] == card["sources"][0]["synthetic"] == 4
    assert card["filters"]["skipped_by_recipes"] == {
        "synthetic: answer not grounded in its chunk": 1,
        "synthetic: teacher reply without question/answer JSON": 1,
    }
    assert card["per_file"]["docs/refunds.md"]["train"] == 2


def test_synthesis_fits_chat_tasks_only(workspace, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(f"# A\n\n{REFUNDS}\n", encoding="utf-8")
    project = synth_project(
        tmp_path, "http://127.0.0.1:9/v1", task="cpt", sources=[{"path": "docs", "kind": "documents"}]
    )
    with pytest.raises(PrepareError, match=r"prepare\.synthesize: .* fits task 'chat' or 'generate' \(got 'cpt'\)"):
        prepare(workspace, project, ingest=ingest)
