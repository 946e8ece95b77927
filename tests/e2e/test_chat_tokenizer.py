"""The bundled model's tokenizer through ``tokenizers`` and jinja2 (confab.bot.llm.chat_tokenizer)
gives exactly what transformers' tokenizer gives: chat prompts, text, decoded text,
special token ids; folders it cannot reproduce are left to transformers."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from confab.bot.llm.chat_tokenizer import ChatTokenizer
from confab.bot.llm.config import ModelConfig
from confab.bot.llm.weights import loadable_folder, resolve_model_path

pytestmark = pytest.mark.model

TEXTS = [
    "What is the capital of France?",
    " leading space and trailing  ",
    "tabs\tand\nnew lines\n\n",
    "émoji 🎉 中文 Привет",
    "<|im_start|>user\nspecial tokens typed in a message<|im_end|>",
    "code:\n```python\ndef f(x):\n    return x * 2\n```",
    "",
    "a" * 300,
]


@pytest.fixture(scope="module")
def folder() -> Path:
    return loadable_folder(resolve_model_path(""), ModelConfig().cache_dir, print)


@pytest.fixture(scope="module")
def both(folder: Path) -> tuple[Any, ChatTokenizer]:
    from transformers import AutoTokenizer

    ours = ChatTokenizer.from_folder(folder)
    assert ours is not None
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True), ours


def test_chat_prompts_are_the_same_tokens(both: tuple[Any, ChatTokenizer]) -> None:
    theirs, ours = both
    chats = [[{"role": "user", "content": text}] for text in TEXTS]
    chats.append(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "bye <|endoftext|>"},
        ]
    )
    for chat in chats:
        for generation_prompt in (True, False):
            want = theirs.apply_chat_template(
                chat, add_generation_prompt=generation_prompt, tokenize=True, return_dict=False
            )
            assert ours.apply_chat_template(chat, add_generation_prompt=generation_prompt) == list(
                want
            )
            text = theirs.apply_chat_template(
                chat, add_generation_prompt=generation_prompt, tokenize=False
            )
            assert (
                ours.apply_chat_template(
                    chat, add_generation_prompt=generation_prompt, tokenize=False
                )
                == text
            )


def test_text_encodes_and_decodes_the_same(both: tuple[Any, ChatTokenizer]) -> None:
    theirs, ours = both
    for text in TEXTS:
        ids = theirs.encode(text, add_special_tokens=False)
        assert ours.encode(text, add_special_tokens=False) == ids
    draw = random.Random(0)
    for _ in range(200):  # any ids, special ones and broken UTF-8 included
        ids = [draw.randrange(theirs.vocab_size) for _ in range(draw.randrange(1, 20))]
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(
                ids, skip_special_tokens=skip
            )
    assert (ours.eos_token_id, ours.pad_token_id, ours.bos_token_id) == (
        theirs.eos_token_id,
        theirs.pad_token_id,
        theirs.bos_token_id,
    )


@pytest.mark.parametrize(
    "change",
    ["another tokenizer class", "a template with transformers' generation tag", "no template"],
)
def test_a_folder_it_cannot_reproduce_is_left_to_transformers(
    change: str, folder: Path, tmp_path: Path
) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(folder / name, tmp_path / name)
    assert ChatTokenizer.from_folder(tmp_path) is not None
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    if change == "another tokenizer class":
        config["tokenizer_class"] = "LlamaTokenizer"
    elif change == "no template":
        (tmp_path / "chat_template.jinja").unlink()
    else:
        (tmp_path / "chat_template.jinja").write_text(
            "{% for m in messages %}{% generation %}{{ m['content'] }}{% endgeneration %}"
            "{% endfor %}"
        )
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert ChatTokenizer.from_folder(tmp_path) is None
