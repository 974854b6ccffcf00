"""Schemathesis fuzzes every operation of the server's OpenAPI schema over real HTTP: no 5xx, no hang,
and every response matches what the schema documents (status codes, content types, bodies, headers);
data the schema calls invalid is refused (4xx). Valid bodies also get the edges of the sampling
settings (temperature and top_p down to 5e-324), which once made 60% of fuzzed completions a 500.
The number of requests sent and of 5xx answers is printed (`-s`) and recorded in docs/reliability.md."""

from __future__ import annotations

import functools
from collections import Counter

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from helpers.serve import ServerThread, single_torch_thread
from tailorlm.feedback import record as record_feedback
from tailorlm.modeling import resolve_model
from tailorlm.serve.app import create_app
from tailorlm.serve.auth import KeyStore, create_key
from tailorlm.serve.engine import Engine
from tailorlm.serve.limits import Limits
from tailorlm.serve.request_log import RequestLog
from tailorlm.workspace import Workspace

pytestmark = pytest.mark.integration

CHECKS = [
    getattr(schemathesis.checks, name)
    for name in (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
]
NEGATIVE_CHECKS = [*CHECKS, schemathesis.checks.negative_data_rejection]
# The edges of what the schema accepts, mixed into valid sampling requests.
EDGES = st.fixed_dictionaries(
    {
        "temperature": st.sampled_from([0.0, 5e-324, 1e-300, 1e-45, 1e-8, 2.0]),
        "top_p": st.sampled_from([5e-324, 1e-300, 1e-8, 0.5, 1.0]),
        "seed": st.sampled_from([None, 0, -1, 2**64, -(2**70)]),
    }
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_model_dir):
    workspace = Workspace(tmp_path_factory.mktemp("fuzz-ws"))
    _, admin = create_key(workspace, "admin", name="fuzz")
    with single_torch_thread():
        engine = Engine(tiny_model_dir, max_queue=64, threads=1)
        request_log = RequestLog(workspace)
        app = create_app(  # configured as `serve()` configures it: request log and feedback on
            engine,
            auth=KeyStore(workspace),
            request_log=request_log,
            limits=Limits(max_body_bytes=64_000, max_tokens_cap=4, rate_limit_per_minute=0),
            resolve_model=lambda reference: resolve_model(workspace, reference),
            audit=workspace.audit.append,
            feedback=functools.partial(record_feedback, workspace),
        )
        with ServerThread(app) as server:
            yield server.url, admin, engine
        engine.close()
        request_log.close()
    workspace.close()


@pytest.mark.parametrize(
    ("mode", "examples"), [(GenerationMode.POSITIVE, 80), (GenerationMode.NEGATIVE, 30)], ids=["valid", "invalid"]
)
def test_no_server_errors_and_responses_match_the_schema(fuzz_server, mode, examples):
    url, admin, engine = fuzz_server
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    checks = CHECKS if mode == GenerationMode.POSITIVE else NEGATIVE_CHECKS
    statuses: Counter[int] = Counter()

    for operation in operations:

        @given(
            case=operation.as_strategy(mode),
            served_model=st.booleans(),
            stream=st.booleans(),
            edges=st.none() | EDGES,
        )
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
            derandomize=True,
            database=None,
        )
        def fuzz(case, served_model: bool, stream: bool, edges: dict | None) -> None:
            # Random model names all get 404: half the valid bodies name the served model instead,
            # so the fuzzed settings reach generation too, streamed or not, some at their edges.
            if mode == GenerationMode.POSITIVE and isinstance(case.body, dict) and "model" in case.body:
                if served_model:
                    case.body["model"] = "base"
                if "messages" in case.body or "prompt" in case.body:
                    case.body["stream"] = stream
                    case.body.update({k: v for k, v in (edges or {}).items() if v is not None})
            response = case.call_and_validate(headers={"Authorization": f"Bearer {admin}"}, checks=checks, timeout=60)
            statuses[response.status_code] += 1

        try:
            fuzz()
        except Unsatisfiable:  # nothing to make invalid (GET /health has no parameters)
            assert mode == GenerationMode.NEGATIVE
        except Exception as error:  # collect every operation's failure, then report them all
            failures[operation.label] = f"{type(error).__name__}: {error}"[:2000]
    sent, server_errors = sum(statuses.values()), sum(n for status, n in statuses.items() if status >= 500)
    print(
        f"\nfuzz ({mode.value}): {sent} requests over {len(operations)} operations, {server_errors} x 5xx, {dict(statuses)}"
    )
    assert not failures, "\n\n".join(f"{label}\n{message}" for label, message in failures.items())
    assert server_errors == 0 and sent >= len(operations) * examples // 2
    assert httpx2.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    if mode == GenerationMode.POSITIVE:
        assert engine.stats["requests"] > 0, "no fuzzed request reached generation"
