"""Parity checks shared by the export targets: the same prompts, rendered exactly as in training, go
through two implementations of the model and their greedy tokens are compared.

Prompts come from the run's test split (its user turns, with their system prompt), else from the
caller, else from a few generic questions. Greedy decoding makes the comparison exact: any
difference in the weights large enough to change an argmax shows up as a different token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorlm.formats.templates import render
from tailorlm.registry import RunMeta
from tailorlm.workspace import Workspace, read_jsonl

GENERIC_PROMPTS = ("Hello! What can you help me with?", "Summarise what you do in one sentence.")
MAX_PROMPTS = 4


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    text: str  # rendered with the generation prompt
    ids: list[int]


def parity_messages(
    workspace: Workspace, run_id: str, system_prompt: str | None, prompts: Sequence[str] | None
) -> list[list[dict[str, str]]]:
    """The conversations to check: given prompts, else the run's test (or val) split, else generic ones."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if prompts:
        return [[*system, {"role": "user", "content": p}] for p in prompts]
    conversations: list[list[dict[str, str]]] = []
    try:
        run = workspace.registry.get(run_id)
        dataset = workspace.registry.get(run.meta_as(RunMeta).dataset)
    except KeyError:
        dataset = None
    if dataset is not None:
        for split in ("test", "val"):
            path = workspace.path_of(dataset) / f"{split}.jsonl"
            rows = read_jsonl(path) if path.exists() else []
            for row in rows:
                messages = row.get("messages") or []
                last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
                if last_user >= 0:
                    conversations.append(
                        [{"role": m["role"], "content": m["content"]} for m in messages[: last_user + 1]]
                    )
            if conversations:
                break
    if not conversations:
        conversations = [[*system, {"role": "user", "content": p}] for p in GENERIC_PROMPTS]
    return conversations[:MAX_PROMPTS]


def render_prompts(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> list[Prompt]:
    """Render each conversation as training did, and tokenise it the way training did (no extra specials)."""
    prompts = []
    for messages in conversations:
        text = render(tokenizer, messages, add_generation_prompt=True)
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        prompts.append(Prompt(messages, text, ids))
    return prompts


def stop_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an answer: EOS and the template's end-of-turn tokens."""
    from tailorlm.formats.templates import stop_strings

    ids = []
    for text in stop_strings(tokenizer):
        token_id = tokenizer.convert_tokens_to_ids(text)
        if isinstance(token_id, int) and token_id >= 0 and token_id != tokenizer.unk_token_id:
            ids.append(token_id)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


def hf_greedy(model: Any, prompts: list[Prompt], max_new_tokens: int, stop: Sequence[int]) -> list[list[int]]:
    """Greedy continuation of each prompt with a transformers model (stops after a stop token)."""
    import torch

    outputs = []
    with torch.no_grad():
        for prompt in prompts:
            input_ids = torch.tensor([prompt.ids], device=model.device)
            generated = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=list(stop) or None,
                pad_token_id=(list(stop) or [0])[0],
            )
            outputs.append(generated[0, input_ids.shape[1] :].tolist())
    return outputs


def hf_next_logits(model: Any, prompts: list[Prompt]) -> list[Any]:
    """The next-token logits after each prompt (float32 tensors), for the max-difference figure."""
    import torch

    with torch.no_grad():
        return [model(torch.tensor([p.ids], device=model.device)).logits[0, -1].float().cpu() for p in prompts]


def compare(
    reference: list[list[int]], candidate: list[list[int]], prompts: list[Prompt], decode: Callable[[list[int]], str]
) -> dict[str, Any]:
    """Exact-match and token-agreement figures, and the first mismatch of each differing prompt."""
    agree = total = identical = 0
    mismatches = []
    for index, (ref, got) in enumerate(zip(reference, candidate, strict=True)):
        length = max(len(ref), len(got))
        same = sum(a == b for a, b in zip(ref, got, strict=False))
        agree, total = agree + same, total + length
        if ref == got:
            identical += 1
            continue
        first = next((i for i, (a, b) in enumerate(zip(ref, got, strict=False)) if a != b), min(len(ref), len(got)))
        mismatches.append(
            {
                "prompt": prompts[index].messages[-1]["content"][:200],
                "first_difference_at": first,
                "expected": decode(ref)[:300],
                "got": decode(got)[:300],
            }
        )
    return {
        "prompts": len(reference),
        "identical": identical,
        "token_agreement": round(agree / total, 4) if total else 1.0,
        "mismatches": mismatches,
    }


def llama_cpp_available() -> str | None:
    """None when llama-cpp-python can be imported, else the reason it can't."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return (
            "llama-cpp-python not installed (pip install -c constraints.txt 'tailorlm[llama-cpp]'; see docs/export.md)"
        )
    except Exception as error:  # a broken native build raises OSError/RuntimeError on import
        return f"llama-cpp-python can't be loaded: {error}"
    return None


def gguf_greedy(path: Path, prompts: list[Prompt], max_new_tokens: int, stop: Sequence[int]) -> dict[str, Any]:
    """Tokenise each rendered prompt and continue it greedily with llama.cpp (through llama-cpp-python).

    Returns the token ids llama.cpp gives each prompt text and its greedy continuations.
    """
    from llama_cpp import Llama

    context = max(len(p.ids) for p in prompts) + max_new_tokens + 8
    llm = Llama(model_path=str(path), n_ctx=context, n_threads=2, seed=0, verbose=False, logits_all=False)
    try:
        tokenised = [llm.tokenize(p.text.encode("utf-8"), add_bos=False, special=True) for p in prompts]
        continuations = []
        for prompt in prompts:
            tokens: list[int] = []
            # temp 0 is llama.cpp's greedy sampler; tokens go in exactly as the HF tokenizer made them.
            for token in llm.generate(
                prompt.ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True
            ):
                tokens.append(int(token))
                if token in stop or len(tokens) >= max_new_tokens:
                    break
            continuations.append(tokens)
    finally:
        close = getattr(llm, "close", None)  # older llama-cpp-python frees on garbage collection only
        if close is not None:
            close()
    return {"tokenised": tokenised, "continuations": continuations}
