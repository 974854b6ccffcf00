"""The commented `tailorlm.yaml` that `tailorlm init` writes: every section, with what it does."""

from __future__ import annotations

TEMPLATE = """\
# TailorLM project file. Every field is documented in docs/project-file.md; `tailorlm validate` checks it.
project: {name}
base_model: {base_model}        # a LOCAL directory (config.json, tokenizer, *.safetensors); nothing is downloaded
task: chat                      # chat | classify | extract | generate | cpt
system_prompt: You are the support assistant of our company. Answer briefly and give a concrete next step.

sources:                        # paths relative to this file
  - {{path: docs/, kind: documents}}      # pdf/docx/html/md/txt → chunks (RAG, continued pretraining)
  - {{path: faq.csv, kind: faq, question: question, answer: answer}}
  # - {{path: support.mbox, kind: email}}                     # customer message → agent reply
  # - {{path: tickets.csv, kind: table, input: body, label: category}}   # for task: classify

prepare:
  pii: redact                   # redact | pseudonymize | off
  dedup: {{near_threshold: 0.85}}
  split: {{test: 0.1, val: 0.05, by: source}}

train:
  method: lora                  # full | lora | qlora | dora
  epochs: auto
  lora: {{r: 16, alpha: 32, targets: all-linear}}

evaluate:
  baselines: [base, few_shot, rag]
  objectives: {{}}  # the gate for `register`, e.g. {{rouge_l: 0.35}} or {{fact_recall: beats_baselines}}

serve: {{host: 127.0.0.1, port: 8000}}
"""


def project_template(name: str, base_model: str) -> str:
    return TEMPLATE.format(name=name, base_model=base_model)
