"""The `feedback` builder: reviewers' feedback (a file `tailorlm feedback export` wrote, or any OpenAI
preference, TRL preference or KTO JSONL) → preference examples.

A corrected answer becomes a pair (chosen = corrected, rejected = original), which is also a supervised
example; paired ratings of one prompt become pairs; single ratings become desirable or undesirable
examples (KTO); neutral ratings are skipped and counted. Every example of one prompt shares its `source`
(`feedback#<prompt hash>`), so a prompt is never in two splits. Like `dataset`, it reads its files itself
(they are records, not documents); the stage cleans and redacts the examples, rejected answers included.
"""

from __future__ import annotations

from collections.abc import Sequence

from tailorlm.config import Project, Source
from tailorlm.documents import Document
from tailorlm.feedback import FeedbackFileError, derive, prompt_key, read_feedback
from tailorlm.formats.preference import pair_example, rated_example
from tailorlm.prepare.builders import BuilderError, BuilderOutput, Skipped, builder
from tailorlm.prepare.builders.dataset import _label, dataset_files


@builder("feedback", tasks=("chat",), files=dataset_files)
def feedback(documents: Sequence[Document], source: Source, project: Project) -> BuilderOutput:
    """Feedback (ratings, corrections, preference pairs) → preference pairs and rated answers."""
    records = []
    for path in dataset_files(source, project):
        try:
            records.extend(read_feedback(path))
        except FeedbackFileError as error:
            raise BuilderError(str(error)) from None
    derived = derive(records)
    label = ", ".join(_label(path, project) for path in dataset_files(source, project))
    for _ in range(derived.neutral):
        yield Skipped("neutral rating")

    def prompt_of(prompt: list[dict[str, str]]) -> list[dict[str, str]]:
        if project.system_prompt and prompt[0]["role"] != "system":
            return [{"role": "system", "content": project.system_prompt}, *prompt]
        return prompt

    for pair in derived.pairs:
        if not pair.chosen.strip():
            yield Skipped("empty chosen answer")
            continue
        yield pair_example(
            prompt_of(pair.prompt),
            pair.chosen,
            pair.rejected,
            source=f"feedback#{prompt_key(pair.prompt)}",
            meta={"file": label, "feedback": pair.feedback, "why": pair.why},
        )
    for single in derived.singles:
        if not single.completion.strip():
            yield Skipped("empty answer")
            continue
        yield rated_example(
            prompt_of(single.prompt),
            single.completion,
            single.desirable,
            source=f"feedback#{prompt_key(single.prompt)}",
            meta={"file": label, "feedback": single.feedback},
        )
