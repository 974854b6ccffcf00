"""Classification candidates that answer without generating: the fine-tuned classification head, and the
rungs of the baseline ladder below it, all on the same test cases.

* `label_similarity` (zero-shot, "prompt" rung): the label whose name's embedding is nearest the text's.
* `knn` (the "retrieval"/RAG rung for classification): a similarity-weighted vote of the k nearest train
  examples (`evaluate.knn_k`).
* `tfidf`: TF-IDF word and bigram features with a logistic regression trained on the train split
  (scikit-learn; balanced class weights).
* a classification run (`classifier.json` beside its weights): one forward pass, the most probable
  label (multi-label heads: every label over its threshold, joined as in the gold cells); its
  confidences are kept to report calibration on test (ECE, accuracy at the abstain threshold,
  the coverage-accuracy curve).

Embeddings are mean-pooled, L2-normalised last hidden states of a local model read with transformers
(what sentence-transformers computes for MiniLM-style encoders): `evaluate.rag_embedding_model` when set,
else the project's base model. Each candidate reads the bare text to classify (`EvalCase.text`).
Each is a model with the generating models' interface (`answer`, `unload`), so the runner treats them alike.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tailorlm.calibration import coverage_curve, expected_calibration_error
from tailorlm.evaluate.generation import GeneratedAnswer, Messages
from tailorlm.evaluate.metrics.multilabel import split_labels
from tailorlm.progress import SILENT, Progress

LADDER = ("label_similarity", "knn", "tfidf")  # the baselines that need no generation


def _texts(conversations: Sequence[Messages]) -> list[str]:
    return [conversation[-1]["content"] for conversation in conversations]


class Embedder:
    """Mean-pooled, normalised hidden states of a local transformers model (loaded on first use)."""

    def __init__(self, path: Path, *, max_length: int = 256) -> None:
        self.path = Path(path)
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        import torch
        from transformers import AutoModel

        from tailorlm.modeling import load_tokenizer

        if self._model is None:
            self._tokenizer = load_tokenizer(self.path)
            self._model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        limit = min(self.max_length, int(getattr(self._tokenizer, "model_max_length", self.max_length)))
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self._tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=limit,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))

    def unload(self) -> None:
        self._model = None
        gc.collect()


class LadderModel:
    """A baseline rung that labels texts without generating: `label_similarity`, `knn` or `tfidf`."""

    def __init__(
        self,
        name: str,
        train: Sequence[tuple[str, str]],
        labels: Sequence[str],
        *,
        embedder: Embedder | None = None,
        k: int = 5,
    ) -> None:
        self.name = name
        self.train = list(train)
        self.labels = list(labels)
        self.embedder = embedder
        self.k = k
        self.generated = 0

    def predict(self, texts: Sequence[str]) -> list[str]:
        if self.name == "tfidf":
            return self._tfidf(texts)
        assert self.embedder is not None
        vectors = self.embedder.encode(texts)
        if self.name == "label_similarity":
            names = [label.replace("_", " ").replace("-", " ") for label in self.labels]
            scores = vectors @ self.embedder.encode(names).T
            return [self.labels[i] for i in scores.argmax(axis=1)]
        train_vectors = self.embedder.encode([text for text, _ in self.train])
        similarity = vectors @ train_vectors.T
        out = []
        for row in similarity:
            votes: dict[str, float] = defaultdict(float)
            for i in np.argsort(-row, kind="stable")[: self.k]:
                votes[self.train[i][1]] += float(row[i])
            out.append(max(sorted(votes), key=lambda label: votes[label]))
        return out

    def _tfidf(self, texts: Sequence[str]) -> list[str]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        features = vectorizer.fit_transform([text for text, _ in self.train])
        model = LogisticRegression(max_iter=2000, class_weight="balanced", C=10.0)
        model.fit(features, [label for _, label in self.train])
        return [str(label) for label in model.predict(vectorizer.transform(list(texts)))]

    def answer(
        self,
        conversations: Sequence[Messages],
        decoding: Any = None,
        *,
        batch_size: int = 32,
        cache: Any = None,
        progress: Progress = SILENT,
        label: str | None = None,
    ) -> list[GeneratedAnswer]:
        task = progress.task(label or self.name, total=len(conversations), unit="answers")
        try:
            predicted = self.predict(_texts(conversations))
            task.advance(len(predicted))
        finally:
            task.done()
        self.generated += len(predicted)
        return [GeneratedAnswer(text) for text in predicted]

    def unload(self) -> None:
        if self.embedder is not None:
            self.embedder.unload()


class ClassifierCandidate:
    """A classification run answering with its most probable label; keeps its confidences for the report."""

    def __init__(self, name: str, artifact_dir: Path, base_model: Path) -> None:
        from tailorlm.classifier import read_info

        self.name = name
        self.artifact_dir = Path(artifact_dir)
        self.base_model = Path(base_model)
        self.info = read_info(artifact_dir)
        self._classifier: Any = None
        self.generated = 0
        self.confidences: list[float] = []
        self.predicted: list[str] = []

    def answer(
        self,
        conversations: Sequence[Messages],
        decoding: Any = None,
        *,
        batch_size: int = 32,
        cache: Any = None,
        progress: Progress = SILENT,
        label: str | None = None,
    ) -> list[GeneratedAnswer]:
        from tailorlm.classifier import load_classifier

        if self._classifier is None:
            self._classifier = load_classifier(self.artifact_dir, self.base_model)
        predictions = self._classifier.predict(
            _texts(conversations), batch_size=batch_size, min_confidence=0.0, progress=progress
        )
        self.generated += len(predictions)
        self.confidences = [p.confidence for p in predictions]
        if self.info.multi_label:  # every label over its threshold, as a gold cell holds them
            self.predicted = [self.info.separator.join(p.labels) for p in predictions]
        else:
            self.predicted = [p.label or "" for p in predictions]
        return [GeneratedAnswer(text) for text in self.predicted]

    def confidence_report(self, gold: Sequence[str | None]) -> dict[str, Any]:
        """ECE on test, what the run's abstain threshold keeps and how precise it is, the coverage curve."""
        pairs = [(c, self._same(p, g)) for c, p, g in zip(self.confidences, self.predicted, gold, strict=True) if g]
        if not pairs:
            return {}
        confidence = [c for c, _ in pairs]
        correct = [ok for _, ok in pairs]
        kept = [ok for c, ok in pairs if c >= self.info.min_confidence]
        return {
            "temperature": self.info.temperature,
            "min_confidence": self.info.min_confidence,
            "ece": expected_calibration_error(confidence, correct),
            "coverage": len(kept) / len(pairs),
            "precision_kept": (sum(kept) / len(kept)) if kept else None,
            "validation": {k: v for k, v in self.info.calibration.items() if k != "coverage_curve"},
            "curve": coverage_curve(confidence, correct),
        }

    def _same(self, predicted: str, gold: str) -> bool:
        if not self.info.multi_label:
            return predicted == gold
        return set(split_labels(predicted, self.info.separator)) == set(split_labels(gold, self.info.separator))

    def unload(self) -> None:
        self._classifier = None
        gc.collect()
