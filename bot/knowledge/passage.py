"""What a search returns, as skills see it (no model or database code here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk as a skill sees it: what it says and where it comes from."""

    id: int
    text: str
    heading: str
    similarity: float  # cosine of question and passage, -1..1
    score: float  # fused rank score; higher is better
    started_at: datetime
    document: str | None = None  # the document's name, for a passage of one
    document_title: str | None = None
    platform: str = ""
    channel: str = ""
    thread: str | None = None
    message_id: str | None = None
    authors: str = ""

    @property
    def from_messages(self) -> bool:
        return self.document is None

    def as_note(self, number: int) -> str:
        """The passage as a model is shown it (``ask``, ``confab model eval --rag``):
        numbered, labelled with its channel or its document's section (a file name
        invites answers about the file)."""
        where = f"#{self.channel}" if self.from_messages else self.heading.split(" > ")[-1]
        return f"[{number}] ({where}) {self.text}" if where else f"[{number}] {self.text}"


@dataclass(frozen=True, slots=True)
class Where:
    """Where the question is asked, which decides what may answer it."""

    platform: str
    channel: str


@dataclass(frozen=True, slots=True)
class Quote:
    """The line of a passage (a message, or a document's sentence) that best answers a
    question, and how close it is to it (cosine)."""

    passage: Passage
    line: str
    closeness: float
