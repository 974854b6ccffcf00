"""`tailorlm base import` on the two model packages (done once by the session fixtures, through the CLI)
records each GGUF's sha256, its origin package and version and its licence; `tailorlm base list --json`
shows them; importing a package again changes nothing."""

from __future__ import annotations

import json
import re

import pytest

from helpers.real_models import GEMMA3, SMOLLM2, tailorlm

pytestmark = pytest.mark.real_model

GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def test_base_list_shows_hash_origin_and_licence(real_workspace, smollm2, gemma3):
    listed = json.loads(tailorlm("base", "list", "--workspace", real_workspace.root, "--json").stdout)
    rows = {row["name"]: row for row in listed}

    smol = rows["smollm2-135m-instruct"]
    assert re.fullmatch(r"[0-9a-f]{64}", smol["sha256"])
    assert smol["origin"]["package"] == SMOLLM2 and smol["origin"]["version"] == "0.1.2"
    assert smol["origin"]["file"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smol["license"] == "Apache-2.0"
    assert smol["architecture"] == "LlamaForCausalLM" and smol["dtype"] == "float32"
    assert 130e6 < smol["parameters"] < 140e6

    gemma = rows["gemma3-270m"]
    assert gemma["sha256"] == GEMMA3_SHA256  # the published hash of the four parts joined
    assert gemma["origin"]["package"] == GEMMA3 and gemma["origin"]["version"] == "1.0.0"
    assert gemma["license"] == "Gemma Terms of Use"
    assert gemma["architecture"] == "Gemma3ForCausalLM"
    assert 260e6 < gemma["parameters"] < 275e6


@pytest.mark.parametrize("package", [SMOLLM2, GEMMA3])
def test_second_import_is_a_no_op(real_workspace, smollm2, gemma3, package):
    base = {SMOLLM2: smollm2, GEMMA3: gemma3}[package]
    directory = real_workspace.path_of(base)
    written = {path.name: path.stat().st_mtime_ns for path in directory.iterdir()}
    events = len(list(real_workspace.audit.events()))

    again = tailorlm("base", "import", package, "--workspace", real_workspace.root)

    assert str(directory) in again.stdout
    assert [a.id for a in real_workspace.registry.find("base", name=base.name)] == [base.id]
    assert {path.name: path.stat().st_mtime_ns for path in directory.iterdir()} == written
    assert len(list(real_workspace.audit.events())) == events  # no second base.import
