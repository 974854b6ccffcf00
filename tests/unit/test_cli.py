"""The CLI is built from the code: every command the docs show exists with its flags, every export
target option and every serve setting is an option, each verb's help has an example, `--version`."""

from __future__ import annotations

import re
import shlex
import typing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tailorlm import __version__
from tailorlm.cli import app
from tailorlm.config import Method, ServeSettings
from tailorlm.export import TARGETS, shared_options

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_STOPS = {"#", "|", "||", "&&", ";", ">", ">>", "2>&1", "&", "--"}  # `--`: the rest is for another verb


def tree():
    return typer.main.get_command(app)


def leaf_commands(command=None, path=()):
    """(path, click command) for every runnable command."""
    command = command or tree()
    subcommands = getattr(command, "commands", {})
    if path and (not subcommands or getattr(command, "invoke_without_command", False)):
        yield path, command
    for name, sub in subcommands.items():
        yield from leaf_commands(sub, (*path, name))


def option_names(command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts) if name.startswith("-")}


def commands_in_docs() -> list[tuple[str, str]]:
    """(where, command line) of every `tailorlm …` shown in README.md and docs/: inline code and shell blocks."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in re.finditer(r"```(\w*)\n(.*?)```", text, re.S):
            if block[1] in ("", "bash", "sh", "console", "shell"):
                for line in block[2].splitlines():
                    line = re.sub(r"^\s*(\$ )?(\.venv/bin/)?", "", line)
                    if line.startswith("tailorlm "):
                        found.append((doc.name, line))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for span in re.finditer(r"`(?:\.venv/bin/)?(tailorlm [^`]+)`", prose):
            found.append((doc.name, " ".join(span[1].split())))
    return found


def check_command_line(line: str) -> list[str]:
    """The problems of one documented command line against the command tree (empty: it exists)."""
    line = re.split(r"\s#", line.replace(" / ", "/").replace("…", ""))[0]
    try:
        tokens = shlex.split(line)[1:]
    except ValueError:  # an apostrophe in prose
        tokens = line.split()[1:]
    command, problems = tree(), []
    while tokens and getattr(command, "commands", None):
        word = tokens[0]
        names = re.split(r"[/|]", word)
        if all(name in command.commands for name in names):
            tokens.pop(0)
            if len(names) > 1:  # `export merge/gguf/ollama/vllm`: alternatives, each must exist
                return problems
            command = command.commands[names[0]]
        elif word.startswith("-") or word.isupper() or not word[:1].isalnum():
            break
        else:
            return [f"{word!r} is not a subcommand of {command.name!r}"]
    known = option_names(command) | {"--help"}
    for token in tokens:
        if token in SHELL_STOPS or token.startswith("#"):
            break
        flag = token.split("=", 1)[0]
        if re.fullmatch(r"--?[A-Za-z][\w-]*", flag) and flag not in known:
            problems.append(f"{flag} is not an option of {command.name!r}")
    return problems


def test_the_docs_show_commands():
    shown = commands_in_docs()
    assert len(shown) > 40
    assert any("export gguf" in line for _, line in shown)


def test_every_command_the_docs_show_exists():
    problems = [f"{where}: `{line}`: {p}" for where, line in commands_in_docs() for p in check_command_line(line)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_wrong_commands():
    assert check_command_line("tailorlm export MODEL --target vllm")
    assert check_command_line("tailorlm serve --no-no-auth")
    assert check_command_line("tailorlm data show x --nope")
    assert not check_command_line("tailorlm export gguf acme@v1 --types q4_K_M --no-check")
    assert not check_command_line("tailorlm serve -m acme --no-auth --threads 2")


def export_command(name: str):
    return tree().commands["export"].commands[name]


def test_export_subcommands_are_the_registered_targets():
    assert set(tree().commands["export"].commands) == set(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_option_is_reachable(name):
    command = export_command(name)
    params = {param.name: param for param in command.params}
    for option in [*TARGETS[name].parameters(), *shared_options()]:
        assert option.name in params, f"export {name}: {option.name} has no option"
        param = params[option.name]
        assert option.help.split(".")[0] in (param.help or ""), (
            f"export {name} --{option.name}: help not the docstring's"
        )
        assert set(getattr(param.type, "choices", None) or ()) == literal_values(option.annotation), option.name


def literal_values(annotation) -> set[str]:
    """The values of a Literal inside an annotation (`Sequence[Literal[...]] | None` too), else empty."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    return set().union(*(literal_values(arg) for arg in typing.get_args(annotation)))


def test_q4_k_m_is_reachable_for_gguf_and_ollama():
    for name, option in (("gguf", "types"), ("ollama", "quantization")):
        param = next(p for p in export_command(name).params if p.name == option)
        assert "q4_K_M" in list(param.type.choices)
    assert next(p for p in export_command("gguf").params if p.name == "types").multiple


def test_serve_options_are_the_settings():
    serve = tree().commands["serve"]
    names = option_names(serve)
    for field in ServeSettings.model_fields:
        assert "--" + field.replace("_", "-") in names
    assert {"--auth", "--no-auth"} <= names and "--no-no-auth" not in names


def test_method_lists_its_choices():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "[" + "|".join(typing.get_args(Method)) + "]" in result.output


def test_every_verb_help_has_an_example_that_exists():
    runner = CliRunner()
    for path, _ in leaf_commands():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, path
        example = re.search(r"Example:\n\s+(tailorlm .+)", result.output)
        assert example, f"tailorlm {' '.join(path)} --help has no example"
        assert example[1].startswith("tailorlm " + " ".join(path)), example[1]
        assert not check_command_line(example[1]), (example[1], check_command_line(example[1]))


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip().startswith("tailorlm ") and result.output.strip().split()[1][0].isdigit()
    assert __version__ in result.output or result.output.count(".") >= 2


# --- a typo is not a new workspace -------------------------------------------------------------------

CREATORS = {("init",), ("quickstart",)}


def verbs_with_a_workspace() -> list[list[str]]:
    """Every verb with --workspace except those that create one, with dummies for required parameters."""
    verbs = []
    for path, command in leaf_commands():
        if path in CREATORS or not any(p.name == "workspace" for p in command.params):
            continue
        args = list(path)
        for param in command.params:
            if param.required:
                args += ["x"] if param.param_type_name == "argument" else [param.opts[0], "x"]
        verbs.append(args)
    return verbs


def test_every_verb_but_init_and_quickstart_refuses_a_missing_workspace(tmp_path):
    verbs = verbs_with_a_workspace()
    assert len(verbs) >= 20
    typo = tmp_path / "nonexist-ws"
    for args in verbs:
        result = CliRunner().invoke(app, [*args, "--workspace", str(typo)])
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert f"no workspace at {typo}" in result.stderr, (args, result.stderr)
        assert not typo.exists(), args


def test_the_workspace_variable_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILORLM_WORKSPACE", str(tmp_path / "typo"))
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 1 and "no workspace at" in result.stderr and not (tmp_path / "typo").exists()


def test_init_creates_a_workspace_that_the_other_verbs_then_accept(tmp_path):
    assert CliRunner().invoke(app, ["init", "--workspace", str(tmp_path / "ws")]).exit_code == 0
    result = CliRunner().invoke(app, ["runs", "--workspace", str(tmp_path / "ws"), "--json"])
    assert result.exit_code == 0 and result.stdout.strip() == "[]"


def test_serve_defaults_are_written_once():
    import inspect

    from tailorlm.serve.limits import Limits
    from tailorlm.serve.server import serve

    defaults = ServeSettings()
    limits = Limits()
    assert (limits.max_body_bytes, limits.max_tokens_cap, limits.rate_limit_per_minute) == (
        defaults.max_body_bytes,
        defaults.max_tokens_cap,
        defaults.rate_limit_per_minute,
    )
    parameters = inspect.signature(serve).parameters
    for name, value in defaults.model_dump().items():
        if name == "auth":
            assert parameters["no_auth"].default is (not value)
        else:
            assert parameters[name].default == value, name
