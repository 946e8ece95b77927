"""A model's tokenizer and chat template without transformers: ``tokenizers`` and jinja2.

transformers' tokenizer for a folder it saved itself (``TokenizersBackend``)
is the ``tokenizers`` library's tokenizer from ``tokenizer.json``, and its chat
template is rendered by jinja2 in a sandbox set up as below; loading it
through transformers imports about a second of modules a start does not need.
:class:`ChatTokenizer` offers the calls Confab makes of a tokenizer, with the
same results (``tests/e2e/test_chat_tokenizer.py`` compares them); a folder it
cannot reproduce (another tokenizer class, a template using transformers'
``{% generation %}`` tag) is loaded by transformers instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The tokenizer class transformers records for a tokenizer.json it saved.
_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}
_SPECIAL = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


class ChatTokenizer:
    """Encodes chats and text, decodes tokens, as transformers' tokenizer for the folder does."""

    def __init__(self, tokenizer: Any, template: Any, special: Mapping[str, str]) -> None:
        self._tokenizer = tokenizer
        self._template = template
        self._special = dict(special)
        self.eos_token_id = self._id(special.get("eos_token"))
        self.pad_token_id = self._id(special.get("pad_token"))
        self.bos_token_id = self._id(special.get("bos_token"))

    @classmethod
    def from_folder(cls, folder: Path) -> ChatTokenizer | None:
        """The folder's tokenizer, or ``None`` when it is not one this class reproduces."""
        try:
            config = json.loads((folder / "tokenizer_config.json").read_text())
            template = _template_text(folder, config)
        except (OSError, ValueError):
            return None
        if not isinstance(config, dict) or config.get("tokenizer_class") not in _CLASSES:
            return None
        if template is None:
            return None
        if config.get("clean_up_tokenization_spaces") or config.get("split_special_tokens"):
            return None
        special = {k: v for k in _SPECIAL if isinstance(v := _token_text(config.get(k)), str)}
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            compiled = _environment().from_string(template)
        # tokenizers raises plain Exceptions; jinja2 a TemplateSyntaxError for a tag only
        # transformers defines, such as {% generation %}.
        except Exception as error:
            log.info("the tokenizer in %s is loaded by transformers instead: %s", folder, error)
            return None
        return cls(tokenizer, compiled, special)

    def apply_chat_template(
        self,
        conversation: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        return_dict: bool = False,
    ) -> Any:
        if return_dict:
            raise ValueError("ChatTokenizer.apply_chat_template returns token ids or text only")
        text = self._template.render(
            messages=[dict(message) for message in conversation],
            tools=None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **self._special,
        )
        return self.encode(text) if tokenize else text

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        text: str = self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        return text

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._tokenizer.token_to_id(token)


def _template_text(folder: Path, config: dict[str, Any]) -> str | None:
    """The chat template: ``chat_template.jinja`` beside the config, or the config's own."""
    path = folder / "chat_template.jinja"
    if path.is_file():
        return path.read_text()
    template = config.get("chat_template")
    return template if isinstance(template, str) else None


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json holds it: text, or an added-token record."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _environment() -> Any:
    """A jinja2 sandbox set up as transformers sets up its own for chat templates
    (transformers.utils.chat_template_utils._cached_compile_jinja_template)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    return environment
