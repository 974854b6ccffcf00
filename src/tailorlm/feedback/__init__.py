"""Reviewers' feedback on answers — ratings, corrections, preferences — stored in the registry with the
conversation, the model and the decoding that produced each answer.

It arrives from the server (`POST /v1/feedback`), the dashboard's playground, evaluation reports
(`from_evaluation`) and files (`tailorlm feedback import`), and leaves as datasets (prepare's
`feedback` builder) or files (`tailorlm feedback export`). A shared piece: stages and the CLI import it;
it imports no stage.
"""

from tailorlm.feedback.derive import Derived, Pair, Single, derive
from tailorlm.feedback.evaluation import from_evaluation
from tailorlm.feedback.files import EXPORT_FORMATS, FeedbackFileError, export_rows, read_feedback, write_feedback
from tailorlm.feedback.records import SOURCES, FeedbackRecord, prompt_key
from tailorlm.feedback.store import Stored, count_feedback, list_feedback, record, record_many

__all__ = [
    "EXPORT_FORMATS",
    "SOURCES",
    "Derived",
    "FeedbackFileError",
    "FeedbackRecord",
    "Pair",
    "Single",
    "Stored",
    "count_feedback",
    "derive",
    "export_rows",
    "from_evaluation",
    "list_feedback",
    "prompt_key",
    "read_feedback",
    "record",
    "record_many",
    "write_feedback",
]
