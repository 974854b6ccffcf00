"""A vLLM multi-LoRA layout: the adapter(s) in PEFT format, `lora_modules.json`, and `launch.sh` with the
exact `vllm serve` command. One base model serves several registered models at once: each adapter is
a module that clients pick with `"model": "<name>"` in the OpenAI API.

    adapters/<name>/      adapter_config.json adapter_model.safetensors tokenizer + chat template
    lora_modules.json     [{"name", "path", "base_model_name"}], vLLM's JSON form of --lora-modules
    launch.sh             vllm serve <base> --enable-lora --lora-modules ... --max-lora-rank R ...

A full-weight run is copied to model/ and served without LoRA. vLLM itself is not run here (it needs a
GPU); the report says so.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from tailorlm.export.runner import ExportContext, ExportError, load_model_ref, target
from tailorlm.modeling import ModelRef
from tailorlm.registry import ModelMeta
from tailorlm.workspace import atomic_write_json, atomic_write_text, default_mode, sha256_file

# vLLM accepts these values for --max-lora-rank; an adapter's rank is rounded up to the next one.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@target("vllm", description="adapters in PEFT format + the vllm serve command (several models on one base)")
def export_vllm(
    context: ExportContext,
    *,
    models: Sequence[str] = (),
    same_base: bool = False,
    port: int = 8000,
) -> None:
    """Adapters, `lora_modules.json` and `launch.sh` for `vllm serve --enable-lora`.

    Args:
        models: More registered models (or runs) on the same base to serve alongside this one.
        same_base: Also add every other registered model (latest version of each name) on the same base.
        port: The port written into the launch command.
    """
    primary = context.model
    if not primary.is_adapter:
        if models or same_base:
            raise ExportError(
                f"{primary.name} is a full-weight model: it is served on its own, without adapters "
                "(drop models= / same_base=)"
            )
        _export_full(context, port)
        return
    adapters = _collect(context, primary, models, same_base)
    names = _module_names(adapters)
    modules, ranks = [], []
    for name, model in zip(names, adapters, strict=True):
        config = _check_adapter(context, name, model)
        ranks.append(max([int(config.get("r", 8)), *map(int, (config.get("rank_pattern") or {}).values())]))
        destination = context.output / "adapters" / name
        _copy_files(model.artifact_dir, destination)
        modules.append(
            {"name": name, "path": str(context.final / "adapters" / name), "base_model_name": str(primary.base_model)}
        )
    rank = next((r for r in VLLM_LORA_RANKS if r >= max(ranks)), None)
    if rank is None:
        raise ExportError(f"adapter rank {max(ranks)} is above vLLM's largest --max-lora-rank ({VLLM_LORA_RANKS[-1]})")
    atomic_write_json(context.output / "lora_modules.json", modules)

    template = _chat_template_flag(context, primary)
    arguments = [
        "serve",
        str(primary.base_model),
        "--served-model-name",
        primary.base_model.name,
        "--enable-lora",
        "--lora-modules",
        *(f"{m['name']}={m['path']}" for m in modules),
        "--max-lora-rank",
        str(rank),
        "--max-loras",
        str(len(modules)),
        *template,
        "--port",
        str(port),
    ]
    command = shlex.join(["vllm", *arguments])
    _write_launch(context, arguments, relative={m["path"]: f"adapters/{m['name']}" for m in modules})
    context.report.details["vllm"] = {
        "command": command,
        "modules": [m["name"] for m in modules],
        "max_lora_rank": rank,
        "adapter_ranks": ranks,
    }
    context.report.skip(
        "vLLM serving",
        "not run here (vLLM needs a GPU and is not a TailorLM dependency); start "
        "launch.sh on the serving machine and ask for model=<module name>",
    )


def _collect(context: ExportContext, primary: ModelRef, models: Sequence[str], same_base: bool) -> list[ModelRef]:
    refs = [models] if isinstance(models, str) else list(models)
    extra: dict[str, str] = {}  # same_base: the newest version of each other name (find() is newest first)
    if same_base:
        for artifact in context.workspace.registry.find("model", status="complete"):
            if artifact.name != primary.name and Path(artifact.meta_as(ModelMeta).base_model) == primary.base_model:
                extra.setdefault(artifact.name, f"{artifact.name}@{artifact.version}")
    adapters, seen = [primary], {(primary.name, primary.version)}
    for ref in [*refs, *extra.values()]:
        model = load_model_ref(context.workspace, ref)
        if (model.name, model.version) in seen or (ref in extra.values() and not model.is_adapter):
            continue
        if not model.is_adapter:
            raise ExportError(f"{ref} is a full-weight model; vLLM serves LoRA adapters on a shared base only")
        if model.base_model.resolve() != primary.base_model.resolve():
            raise ExportError(
                f"{ref} was trained on {model.base_model}, not on {primary.base_model}: one vLLM "
                "server shares one base model"
            )
        adapters.append(model)
        seen.add((model.name, model.version))
    return adapters


def _module_names(adapters: list[ModelRef]) -> list[str]:
    """The registered name; `name-vN` where two versions of one name are served together."""
    counts: dict[str, int] = {}
    for model in adapters:
        counts[model.name] = counts.get(model.name, 0) + 1
    return [m.name if counts[m.name] == 1 or not m.version else f"{m.name}-{m.version}" for m in adapters]


def _check_adapter(context: ExportContext, name: str, model: ModelRef) -> dict:
    config = json.loads((model.artifact_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("use_dora"):
        raise ExportError(
            f"{name} is a DoRA adapter, which vLLM can't load as LoRA; export it with the merge "
            "target and serve the merged folder"
        )
    if config.get("peft_type", "LORA") != "LORA":
        raise ExportError(f"{name} is a {config.get('peft_type')} adapter; vLLM serves LoRA adapters only")
    if config.get("modules_to_save"):
        context.report.warn(f"{name}: modules_to_save {config['modules_to_save']} are not applied by vLLM's LoRA")
    if model.method == "qlora":
        context.report.warn(
            f"{name} was trained with QLoRA (4-bit base); vLLM applies it to the full-precision "
            "base, so answers can differ slightly"
        )
    return config


def _copy_files(source: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name != "README.md":
            shutil.copy2(path, destination / path.name)
    for path in destination.iterdir():
        if sha256_file(path) != sha256_file(source / path.name):
            raise ExportError(f"copying {source / path.name} gave a different file")


def _chat_template_flag(context: ExportContext, primary: ModelRef) -> list[str]:
    """`--chat-template` when the base's own template is not the one the adapter was trained with."""
    from tailorlm.modeling import load_tokenizer

    trained = load_tokenizer(primary.artifact_dir).chat_template
    try:
        from transformers import AutoTokenizer

        base = AutoTokenizer.from_pretrained(primary.base_model, local_files_only=True).chat_template
    except Exception:  # an unreadable base tokenizer: vLLM will say so itself
        base = None
    if base == trained:
        return []
    atomic_write_text(context.output / "chat_template.jinja", trained)
    context.report.warn(
        "the base model's chat template differs from the training template: the command passes "
        "--chat-template with the one used in training"
    )
    return ["--chat-template", str(context.final / "chat_template.jinja")]


def _write_launch(context: ExportContext, arguments: list[str], relative: dict[str, str]) -> None:
    """launch.sh with paths inside the export made relative to the script, so the folder can move."""
    final = str(context.final)
    shown = []
    for argument in arguments:
        name, sep, path = argument.partition("=")
        if sep and path in relative:
            shown.append(f'{shlex.quote(name)}="$HERE/{relative[path]}"')
        elif argument.startswith(final):
            shown.append(f'"$HERE{argument[len(final) :]}"')
        else:
            shown.append(shlex.quote(argument))
    script = (
        "#!/usr/bin/env bash\n# Serve the exported model(s) with vLLM; written by `tailorlm export`.\n"
        'set -euo pipefail\nHERE="$(cd "$(dirname "$0")" && pwd)"\nexec vllm ' + " \\\n  ".join(shown) + ' "$@"\n'
    )
    launch = context.output / "launch.sh"
    atomic_write_text(launch, script)
    launch.chmod(default_mode(executable=True))


def _export_full(context: ExportContext, port: int) -> None:
    _copy_files(context.model.artifact_dir, context.output / "model")
    arguments = ["serve", str(context.final / "model"), "--served-model-name", context.model.name, "--port", str(port)]
    _write_launch(context, arguments, relative={})
    context.report.details["vllm"] = {"command": shlex.join(["vllm", *arguments]), "modules": []}
    context.report.skip(
        "vLLM serving",
        "not run here (vLLM needs a GPU and is not a TailorLM dependency); start launch.sh on the serving machine",
    )
