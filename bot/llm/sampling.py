"""Per-request token choice and text assembly for the batching engine.

Token choice follows transformers' ``generate`` exactly (repetition penalty,
then temperature, then top-p, then a draw), so greedy decoding in a batch gives
the tokens ``generate`` gives for the same prompt alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from confab.bot.llm.backend import GenerationParams

INCOMPLETE = "\ufffd"  # what a decoder shows for the first bytes of a split character


class Sampler:
    """Chooses one request's next token from the model's scores."""

    def __init__(self, params: GenerationParams, prompt: Sequence[int]) -> None:
        self._params = params
        self._seen = torch.tensor(list(prompt), dtype=torch.long)
        self._generator: torch.Generator | None = None
        if params.temperature > 0 and params.seed is not None:
            self._generator = torch.Generator().manual_seed(params.seed)

    def choose(self, logits: torch.Tensor) -> int:
        """The next token, given the scores of the last position (shape ``[vocab]``)."""
        params = self._params
        scores = logits.float()
        if params.repetition_penalty != 1.0 and self._seen.numel():
            picked = scores.gather(0, self._seen)
            picked = torch.where(
                picked < 0, picked * params.repetition_penalty, picked / params.repetition_penalty
            )
            scores = scores.scatter(0, self._seen, picked)
        if params.temperature == 0:
            token = int(scores.argmax())
        else:
            scores = _top_p(scores / params.temperature, params.top_p)
            probs = torch.softmax(scores, dim=-1)
            token = int(torch.multinomial(probs, 1, generator=self._generator))
        self._seen = torch.cat([self._seen, torch.tensor([token])])
        return token


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability adds up to ``top_p``."""
    if top_p >= 1.0:
        return scores
    ordered, indices = torch.sort(scores, descending=False)
    cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[-1] = False  # the likeliest token always stays
    return scores.masked_fill(remove.scatter(0, indices, remove), -float("inf"))


class TextTail:
    """Turns one request's tokens into text pieces, ending before a stop string.

    Text is held back while it ends in half a character, or while its end could
    still grow into one of the stop strings.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self._stop = [s for s in stop if s]
        self._ids: list[int] = []
        self._text = ""
        self._sent = 0
        self.stopped = False

    def push(self, token: int) -> str:
        """Add a token; return the text that is now safe to show."""
        self._ids.append(token)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith(INCOMPLETE):
            return ""
        self._text = text
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            return self._release(cut)
        return self._release(len(text) - self._held_back())

    def flush(self) -> str:
        """The rest of the text, once no more tokens will come."""
        if self.stopped:
            return ""
        return self._release(len(self._text))

    def _release(self, end: int) -> str:
        piece = self._text[self._sent : end] if end > self._sent else ""
        self._sent = max(self._sent, end)
        return piece

    def _first_stop(self) -> int | None:
        # Text that could start a stop string is held back, so none starts before it.
        found = [i for i in (self._text.find(s, self._sent) for s in self._stop) if i >= 0]
        return min(found) if found else None

    def _held_back(self) -> int:
        """Length of the longest end of the text that starts some stop string."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(self._text)), longest, -1):
                if stop.startswith(self._text[-size:]):
                    longest = size
                    break
        return longest
