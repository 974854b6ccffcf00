"""The CLI against a real workspace (one tiny LoRA run, registered as acme-support@v1): `--json` output
that parses, tables that keep ids whole, export options that reach the target, serve settings read from
the project file, and no traceback for a user's mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from helpers.data import train_registered
from tailorlm.cli import app
from tailorlm.output import print_table
from tailorlm.workspace import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cli") / "ws"
    ws = Workspace(root)
    run_id = train_registered(ws, tiny_model_dir, "acme-support")
    ws.close()
    project = {"project": "tiny", "base_model": str(tiny_model_dir), "train": {"max_length": 128}}
    (root / "tailorlm.yaml").write_text(yaml.safe_dump(project), encoding="utf-8")
    return root, run_id


def tailorlm(*args: str, columns: int = 80):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns), "NO_COLOR": "1"})


def ok(*args: str):
    result = tailorlm(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


# --- --json on the listing verbs -------------------------------------------------------------------


def test_listings_print_json_that_parses(trained):
    root, run_id = trained
    runs = json.loads(ok("runs", "-w", root, "--json").stdout)
    assert [r["id"] for r in runs] == [run_id] and runs[0]["meta"]["method"] == "lora"
    models = json.loads(ok("models", "-w", root, "--json").stdout)
    assert [(m["name"], m["version"]) for m in models] == [("acme-support", "v1")]
    lineage = json.loads(ok("lineage", "acme-support@v1", "-w", root, "--json").stdout)
    assert [item["kind"] for item in lineage][:3] == ["model", "run", "dataset"]
    audit = json.loads(ok("audit", "-w", root, "--json", "--last", "0").stdout)
    actions = {e["action"] for e in audit["events"]}
    assert audit["intact"] is True and "register" in actions and any(a.startswith("train") for a in actions)
    shown = json.loads(ok("data", "show", "tiny@v1", "-w", root, "--json").stdout)
    assert shown["dataset"]["name"] == "tiny" and shown["dataset"]["meta"]["counts"]["train"] == 32
    ok("keys", "create", "--name", "ci", "-w", root)
    keys = json.loads(ok("keys", "list", "-w", root, "--json").stdout)
    assert [k["name"] for k in keys] == ["ci"] and "secret" not in json.dumps(keys)


def test_lineage_takes_every_name_form(trained):
    root, run_id = trained
    for reference in ("acme-support@v1", "acme-support", "model-acme-support-v1", run_id, "tiny@v1"):
        assert run_id in ok("lineage", reference, "-w", root).stdout or reference == "tiny@v1"


# --- nothing truncated -----------------------------------------------------------------------------


def test_tables_keep_ids_whole_at_80_columns(trained, tiny_model_dir):
    root, run_id = trained
    for args in (("runs",), ("models",), ("lineage", "acme-support@v1"), ("audit",)):
        output = ok(*args, "-w", root).stdout
        assert "…" not in output, (args, output)
    assert run_id in ok("runs", "-w", root).stdout
    assert str(tiny_model_dir) in ok("models", "-w", root).stdout  # a long path, whole, in a pipe


def test_data_show_prints_the_whole_card_in_a_pipe(trained):
    root, _ = trained
    long_path = "/srv/acme/exports/2026/customer-support/tickets-with-a-long-name-" + "x" * 40 + ".csv"
    card = f"# tiny v1\n\n| source | examples |\n|---|---|\n| {long_path} | 40 |\n"
    (root / "datasets" / "tiny" / "v1" / "card.md").write_text(card)  # as prepare writes one
    try:
        assert ok("data", "show", "tiny", "-w", root).stdout == card  # whole, not `tickets-with…`
    finally:
        (root / "datasets" / "tiny" / "v1" / "card.md").unlink()


def test_on_a_terminal_cells_fold_instead_of_eliding():
    terminal = Console(force_terminal=True, width=30, record=True, color_system=None)
    long_id = "run-20261204-183443-abcdef-with-a-very-long-suffix-0123456789"
    print_table(["id"], [[long_id]], to=terminal)
    text = terminal.export_text()
    assert "…" not in text and "".join(text.split()) == "id" + long_id


def test_data_inspect_marks_trained_tokens_in_a_pipe(trained):
    root, _ = trained
    output = ok("data", "inspect", "tiny", "-w", root, "-n", "1").stdout
    assert "trained (loss)" in output
    assert output.count("{+") >= 1 and output.count("{+") == output.count("+}")
    example = output.split("\n--- ", 1)[1]
    assert "Acme support" in example.split("{+", 1)[0]  # the system prompt is masked: before the first mark


# --- export options come from the target registry ---------------------------------------------------


def test_export_options_reach_the_target(trained):
    root, _ = trained
    ok("export", "merge", "acme-support", "-w", root, "--dtype", "float16", "--no-check")
    report = json.loads((root / "exports" / "acme-support-v1" / "merged" / "export_report.json").read_text())
    assert report["merged"]["dtype"] == "float16"
    assert {c["status"] for c in report["checks"] if "parity" in c["name"].lower()} <= {"skipped"}
    ok("export", "gguf", "acme-support@v1", "-w", root, "--types", "f16", "--no-check")
    written = sorted(p.name for p in (root / "exports" / "acme-support-v1" / "gguf").glob("*.gguf"))
    assert written == ["acme-support-v1-f16.gguf"]


# --- serve reads the project file's serve: section --------------------------------------------------


def test_serve_takes_its_settings_from_the_project_file(trained, tmp_path):
    root, _ = trained
    project = yaml.safe_load((root / "tailorlm.yaml").read_text())
    open_host = tmp_path / "open.yaml"
    # serve loads the registered models' own base: the project's base_model need not exist here
    settings = {**project, "base_model": "/nowhere/base", "serve": {"host": "0.0.0.0", "auth": False}}
    open_host.write_text(yaml.safe_dump(settings))
    result = tailorlm("serve", "-m", "acme-support", "-w", root, "-p", open_host)
    assert result.exit_code == 1 and "refused on 0.0.0.0" in result.stderr
    loopback = tmp_path / "loopback.yaml"
    loopback.write_text(yaml.safe_dump({**project, "serve": {"auth": False}}))
    result = tailorlm("serve", "-m", "acme-support", "-w", root, "-p", loopback, "--host", "10.1.2.3")
    assert result.exit_code == 1 and "refused on 10.1.2.3" in result.stderr  # the option overrides the file
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**project, "serve": {"port": 0}}))
    result = tailorlm("serve", "-m", "acme-support", "-w", root, "-p", bad)
    assert result.exit_code == 1 and "serve.port" in result.stderr


# --- a user's mistake: a message and a hint, never a traceback ----------------------------------------

MISTAKES = [
    ["lineage", "acme-support@v9"],
    ["lineage", "nope"],
    ["lineage", "run-20250101-000000-abcdef"],
    ["data", "show", "nope@v1"],
    ["data", "show", "tiny@v7"],
    ["data", "inspect", "nope"],
    ["data", "inspect", "missing.jsonl", "--base-model", "/nonexistent/model"],
    ["data", "import", "missing.jsonl"],
    ["train", "--resume", "run-nope"],
    ["train", "--dataset", "nope@v3"],
    ["train", "--data", "missing.jsonl"],
    ["train", "--method", "bogus"],
    ["train", "--max-steps", "many"],
    ["train", "--project", "missing.yaml"],
    ["eval", "--run", "run-nope"],
    ["eval", "--cases", "missing.yaml"],
    ["eval", "--compare", "eval-a", "eval-b"],
    ["register", "run-nope"],
    ["export", "gguf", "acme-support@v9"],
    ["export", "merge", "run-nope"],
    ["export", "merge", "acme-support", "--dtype", "float99"],
    ["export", "ollama", "acme-support", "--quantization", "q2"],
    ["export", "vllm", "acme-support", "--port", "eighty"],
    ["export", "onnx", "acme-support"],
    ["serve", "-m", "nope@v1"],
    ["serve", "-m", "acme-support", "--port", "0"],
    ["serve", "-m", "acme-support", "--host", "0.0.0.0", "--no-auth"],
    ["serve"],
    ["models", "deploy", "acme-support", "--url", "http://127.0.0.1:9"],
    ["models", "deploy", "acme-support", "--url", "ftp://example"],
    ["keys", "revoke", "nope"],
    ["keys", "create", "--scope", "root"],
    ["keys", "create", "--models", "nope"],
    ["keys", "create", "--models", "acme-support@v1"],
    ["serve", "-m", "acme-support", "--log-retention-days", "-1"],
    ["ingest", "missing-folder"],
    ["prepare", "--project", "missing.yaml"],
    ["run", "--project", "missing.yaml"],
    ["validate", "missing.yaml"],
    ["init"],  # the workspace already has a project file
    ["runs", "--bogus-flag"],
    ["nonsense-verb"],
]


@pytest.mark.parametrize("args", MISTAKES, ids=lambda args: " ".join(args))
def test_a_mistake_is_a_message_not_a_traceback(trained, args):
    root, _ = trained
    command = [*args, "--workspace", str(root)] if args[0] not in ("validate", "nonsense-verb") else args
    result = tailorlm(*command)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert result.stderr.startswith("error: "), result.output


def test_keys_name_only_models_a_server_could_serve(trained):
    root, _ = trained
    assert (
        "secret is shown only now"
        in ok("keys", "create", "--models", "acme-support", "--models", "base", "-w", root).stdout
    )
    refused = tailorlm("keys", "create", "--models", "acme-suport", "-w", root)
    assert refused.exit_code == 1 and "no registered model or run of that name" in refused.stderr
    assert "acme-support" in refused.stderr and "--allow-alias" in refused.stderr
    ok("keys", "create", "--models", "canary", "--allow-alias", "-w", root)
    scope = tailorlm("keys", "create", "--scope", "root", "-w", root)
    assert scope.exit_code == 2 and "'root' is not one of 'chat', 'admin'" in scope.output
    retention = tailorlm("serve", "-m", "acme-support", "--log-retention-days", "-1", "-w", root)
    assert (
        retention.exit_code == 1
        and "log_retention_days: Input should be greater than or equal to 0" in retention.stderr
    )


def test_the_hint_says_what_to_do(trained):
    root, _ = trained
    result = tailorlm("lineage", "acme-support@v9", "-w", root)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    assert "acme-support@v9" in lines[0] and "tailorlm models" in lines[1]


def test_eval_prints_its_summary_as_json_and_as_an_uncut_table(trained):
    root, _ = trained
    summary = json.loads(ok("eval", "-w", root, "--baseline", "base", "--json").stdout)
    assert summary["evaluation"].startswith("eval-") and Path(summary["path"], "summary.json").is_file()
    assert set(summary["summary"]["scores"]) >= {"base"} and len(summary["summary"]["scores"]) == 2
    table = ok("eval", "-w", root, "--baseline", "base").stdout
    assert "…" not in table and "finetuned" in table  # the candidate's name whole, not `finetun…`
    report = next(line for line in table.splitlines() if line.startswith("Report: "))
    assert Path(report.removeprefix("Report: ")).is_file()  # the path on one line, whole
    again = Path(report.removeprefix("Report: ")).parent.name
    diff = json.loads(ok("eval", "-w", root, "--compare", summary["evaluation"], again, "--json").stdout)
    assert diff["before"] == summary["evaluation"] and diff["after"] == again
