"""``code``: explain, review, fix or write code with the model.

``explain`` and ``review`` stream the model's answer. ``fix`` and ``write``
answer with code, so the whole answer is generated first, its code fences
tagged with the language. Python is checked before anything is shown: several
candidates are run against tests in a sandbox (:mod:`confab.skills.code_checks`) and
the first that passes is shown; with ``run_checks = false``, or when no
candidate parses, it is checked with :func:`ast.parse` only (asking the model
once more with the error).
"""

from __future__ import annotations

import ast
import logging
import re
import textwrap
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass

from pydantic import Field

from confab.bot.checks.sandbox import SandboxLimits
from confab.bot.skill import (
    ChatMessage,
    GenerationParams,
    GenerationSettings,
    PromptTemplates,
    Skill,
    SkillContext,
)
from confab.skills.code_checks import (
    best_candidate,
    generate,
    given_tests,
    named_functions,
    tests_prompt,
    verdict,
    written_tests,
)

log = logging.getLogger(__name__)

PROMPTS = PromptTemplates.load(__package__, "code.toml")

MODES = ("explain", "review", "fix", "write")
CODE_MODES = ("fix", "write")  # answered with checked code rather than a stream

# Fence tags and names as people write them -> the tag replies use.
ALIASES = {
    "py": "python", "py3": "python", "python3": "python", "js": "javascript",
    "node": "javascript", "nodejs": "javascript", "node.js": "javascript", "ts": "typescript",
    "golang": "go", "rs": "rust", "c++": "cpp", "c#": "csharp", "cs": "csharp",
    "sh": "bash", "shell": "bash", "rb": "ruby",
}  # fmt: skip
# Names that mean a language wherever they appear in a `write` description ...
NAMED_ANYWHERE = {
    "python", "python3", "rust", "golang", "javascript", "nodejs", "node.js", "typescript",
    "bash", "java", "kotlin", "c++", "cpp", "c#", "csharp", "ruby", "php", "sql",
    "html", "css", "haskell", "lua", "perl",
}  # fmt: skip
# ... and words that are a language only as "in go", "using c", "a shell script".
NAMED_IN_CONTEXT = {"go", "c", "sh", "shell", "js", "ts", "node", "swift", "r"}
LANGUAGE_BEFORE = {"in", "using"}
LANGUAGE_AFTER = {"script", "program", "function", "code", "snippet", "module", "class"}

_WORD = re.compile(r"[a-z0-9_]+(?:\+\+|#|\.js)?")
_TAG = re.compile(r"[\w+#.-]*")  # a fence info string that is a language tag, not code
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<marker>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_PYTHON_LINE = re.compile(
    r"^\s*(?:(?:async\s+)?def\s+\w+\s*\(.*\)\s*(?:->[^:]+)?:.*|class\s+\w+.*:"
    r"|(?:from\s+[\w.]+\s+)?import\s+[\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+)*"
    r"|(?:if|elif|else|for|while|with|try|except|finally)\b.*:)\s*(?:#.*)?$",
    re.MULTILINE,
)
_PYTHON_HINT = re.compile(
    r"\b(?:print|len|range|self|None|True|False|lambda|yield|elif)\b|\bfor\b.+\bin\b"
)
_MODE = re.compile(r"\s*([^\s`]*)(.*)", re.DOTALL)
_INLINE = re.compile(r"(`{1,3})([^`].*?)\1", re.DOTALL)


class CodeConfig(GenerationSettings):
    """The ``[skills.code]`` section: how long and how freely the model writes, and
    the language ``write`` uses when the request names none."""

    max_new_tokens: int | None = Field(384, gt=0, le=8192)
    temperature: float | None = Field(0.2, ge=0.0, le=2.0)
    default_language: str = Field("python", min_length=1, max_length=20, pattern=r"^\S+$")
    # The packaged code model answers `!code` where it is installed (`make run` does);
    # elsewhere the channel's model answers.
    model: str | None = Field("qwen2.5-coder-0.5b", max_length=200)
    # Python from fix/write is run against tests in a sandbox before it is shown.
    run_checks: bool = True
    candidates: int = Field(3, ge=1, le=8)
    candidate_temperature: float = Field(0.7, ge=0.0, le=2.0)
    check_timeout_s: float = Field(5.0, gt=0, le=60)


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: its language tag (canonical, "" if none) and its code."""

    tag: str
    code: str


@dataclass(frozen=True, slots=True)
class Fenced:
    """Markdown text with its code blocks found: ``text`` has each untagged fence
    tagged (when a language is known) and a fence left open closed."""

    text: str
    blocks: list[Block]
    outside: str  # the text around the blocks
    unclosed: str = ""  # the fence of a block that was left open (and is closed in text)


@dataclass(frozen=True, slots=True)
class Request:
    """What a ``!code`` message asks: the mode, the code (or description for ``write``),
    its language if known, and any words the person wrote around a code block."""

    mode: str
    text: str
    language: str | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """Why generated Python does not parse."""

    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.message} (line {self.line})" if self.line else self.message


NO_CODE = ParseFailure("there is no code in the answer")


def canonical(tag: str) -> str:
    """A fence info string or language name as a lowercase tag (``py`` -> ``python``)."""
    words = tag.strip().lower().split()
    return ALIASES.get(words[0], words[0]) if words else ""


def fenced(text: str, language: str | None = None) -> Fenced:
    """Find the code blocks of ``text`` (CommonMark fences), tagging untagged ones."""
    lines: list[str] = []
    outside: list[str] = []
    blocks: list[Block] = []
    marker = ""  # the fence of the block we are in; "" outside blocks
    body: list[str] = []
    for line in text.split("\n"):
        if not marker:
            found = _FENCE.match(line)
            if found is None:
                outside.append(line)
                lines.append(line)
                continue
            marker, body, info = found["marker"], [], found["info"].strip()
            tag = canonical(info) if _TAG.fullmatch(info) else ""
            if not tag:
                line = f"{found['indent']}{marker}{language or ''}"
                tag = language or ""
                if info:  # "```def f():": the code began on the fence line
                    body.append(info)
                    line += "\n" + info
            lines.append(line)
            continue
        stripped = line.strip()
        lines.append(line)
        if len(stripped) >= len(marker) and set(stripped) == {marker[0]}:
            blocks.append(Block(tag, _dedent(body)))
            marker = ""
        else:
            body.append(line)
    if marker:  # the answer stopped inside a block: close it
        blocks.append(Block(tag, _dedent(body)))
        lines.append(marker)
    return Fenced("\n".join(lines), blocks, "\n".join(outside).strip(), marker)


def _dedent(lines: list[str]) -> str:
    return textwrap.dedent("\n".join(lines)).strip("\n")


def code_block(code: str, language: str | None) -> str:
    """``code`` in a fenced block, with a fence longer than any backtick run inside."""
    marker = "```"
    while marker in code:
        marker += "`"
    return f"{marker}{language or ''}\n{code}\n{marker}"


def guess_language(code: str) -> str | None:
    """A tag for untagged code: from a ``#!`` line, or python when it looks like it."""
    first = code.lstrip().split("\n", 1)[0]
    if first.startswith("#!"):
        for word, language in (("python", "python"), ("node", "javascript"), ("sh", "bash")):
            if word in first:
                return language
    # Much code in other languages parses as Python (`console.log(x)`, `ls -la`):
    # parsing only counts together with something only Python code says.
    if _PYTHON_LINE.search(code) or (_PYTHON_HINT.search(code) and python_problem(code) is None):
        return "python"
    return None


def named_language(description: str) -> str | None:
    """The language a ``write`` description names: "in rust", "a bash script" ..."""
    words = [m[0].rstrip(".") for m in _WORD.finditer(description.lower())]
    named: list[str] = []
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        after = words[index + 1] if index + 1 < len(words) else ""
        in_context = before in LANGUAGE_BEFORE or after in LANGUAGE_AFTER
        if word in NAMED_ANYWHERE or (word in NAMED_IN_CONTEXT and in_context):
            if before in LANGUAGE_BEFORE:  # "rewrite this python in rust": the target wins
                return canonical(word)
            named.append(word)
    return canonical(named[0]) if named else None


def python_problem(code: str) -> ParseFailure | None:
    """Why ``code`` is not valid Python, or None. Only parses: nothing is run."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for "\d" and the like
            ast.parse(code)
    except SyntaxError as error:
        return ParseFailure(error.msg, error.lineno)
    except (ValueError, RecursionError, MemoryError) as error:  # null bytes, deep nesting
        return ParseFailure(str(error) or type(error).__name__)
    return None


def answer_problem(blocks: Sequence[Block]) -> ParseFailure | None:
    """Why the Python blocks of an answer do not parse; blocks in other languages pass."""
    python = [block.code for block in blocks if block.tag == "python"]
    if python and not any(code.strip() for code in python):
        return NO_CODE
    return next((p for p in map(python_problem, python) if p is not None), None)


def parse_request(args: str, default_language: str) -> Request | str:
    """The request in ``!code`` arguments, or what is wrong with them."""
    found = _MODE.match(args)
    assert found is not None  # the pattern matches any text
    mode, rest = found[1].lower(), found[2]
    if not mode:
        return "Tell me what to do with the code."
    if mode not in MODES:
        return f"I don't know the mode `{mode[:30]}`."
    first, newline, others = rest.partition("\n")
    # The text may start on the command's line or on the next one.
    text = textwrap.dedent(first.lstrip() + newline + others if first.strip() else others)
    text = text.strip("\n").rstrip()
    what = "a description of the code to write" if mode == "write" else f"the code to {mode}"
    if not text.strip():
        return f"Give me {what}."
    parsed = fenced(text)
    tagged = next((block.tag for block in parsed.blocks if block.tag), None)
    if mode == "write":
        language = tagged or named_language(text) or canonical(default_language)
        return Request(mode, text, language)
    note = ""
    if parsed.blocks:
        code = "\n\n".join(block.code for block in parsed.blocks if block.code.strip())
        note = parsed.outside
    else:
        inline = _INLINE.fullmatch(text)
        code = inline[2].strip() if inline and inline[1] not in inline[2] else text
    if not code.strip():
        return f"Give me {what}."
    return Request(mode, code, tagged or guess_language(code), note)


def instruction(request: Request) -> str:
    """The user message asking the model for ``request``."""
    language = request.language
    values = {
        "kind": f"{language} code" if language else "code",
        "fence": f"```{language or ''}",
    }
    if request.mode == "write":
        text = PROMPTS.render("write", description=request.text, **values)
    else:
        text = PROMPTS.render(request.mode, code=code_block(request.text, language), **values)
    if request.note:
        text += "\n\n" + PROMPTS.render("note", note=request.note)
    return text


async def _streamed(chunks: AsyncIterable[str], language: str | None) -> AsyncIterator[str]:
    """The answer as it comes, each untagged opening fence tagged with ``language``,
    and a closing fence if the answer stopped inside a block.

    A line is held back only while it could still turn out to be a fence line.
    """
    fence = ""  # the marker of the block we are in
    held = ""  # the start of the current line, not yet sent
    plain = False  # the current line is not a fence line, and its start was sent

    def line_end(line: str) -> str:
        nonlocal fence
        found = _FENCE.match(line)
        if found is None:
            return line
        marker, info = found["marker"], found["info"].strip()
        if fence:
            if marker[0] == fence[0] and len(marker) >= len(fence) and not info:
                fence = ""
            return line
        fence = marker
        return line + (language or "") if not info else line

    async for chunk in chunks:
        out = []
        for part in re.split(r"(\n)", chunk):
            if part == "\n":
                out.append(("" if plain else line_end(held)) + "\n")
                held, plain = "", False
            elif plain:
                out.append(part)
            elif part:
                held += part
                if not held.lstrip(" ").startswith(("`", "~")) and held.strip():
                    out.append(held)
                    held, plain = "", True
        if text := "".join(out):
            yield text
    tail = "" if plain else line_end(held)
    if fence:  # the answer stopped inside a block: close it on a line of its own
        tail += ("\n" if plain or tail else "") + fence
    if tail:
        yield tail


def tidy_answer(answer: str, language: str | None) -> Fenced:
    """The model's answer with its code fenced and tagged: bare code gets a block.

    A bare answer asked to be Python that does not parse as Python is prose (a
    refusal, an explanation): it gets no block, so it is never shown as code.
    """
    answer = answer.strip()
    found = fenced(answer, language)
    if found.blocks:
        return found
    if language == "python" and python_problem(answer) is not None:
        return Fenced(answer, [], answer)
    return fenced(code_block(answer, language), language)


class CodeSkill(Skill):
    """Explains, reviews, fixes or writes code for people in a chat.

    Code comes in a fenced block, in backticks or bare; replies keep code in
    fenced blocks tagged with its language.
    """

    name = "code"
    help = "Explain, review, fix or write code."
    usage = "explain|review|fix|write <code or description>"
    config_model = CodeConfig

    async def run(self, ctx: SkillContext) -> None:
        config: CodeConfig = ctx.config or CodeConfig()
        request = parse_request(ctx.args, config.default_language)
        if isinstance(request, str):
            await ctx.reply(f"{request}\n\n{_usage(ctx.prefix)}")
            return
        messages = [
            ChatMessage("system", PROMPTS.render("system")),
            ChatMessage("user", instruction(request)),
        ]
        params = config.params(ctx.model.default_params)
        if request.mode not in CODE_MODES:
            await ctx.reply_stream(_streamed(ctx.model.stream(messages, params), request.language))
            return

        language = request.language
        if config.run_checks and language == "python":
            checked = await _checked(ctx, request, messages, params, config)
            if checked is not None:
                await ctx.reply(checked)
                return
        first = await ctx.model.complete(messages, params)
        answer = tidy_answer(first, language)
        problem = answer_problem(answer.blocks)  # its Python blocks, whatever was asked
        if problem is not None:
            log.info("code %s: its Python does not parse (%s); asking again", request.mode, problem)
            retry = PROMPTS.render("retry", error=problem, fence=f"```{language or 'python'}")
            messages += [ChatMessage("assistant", first), ChatMessage("user", retry)]
            answer = tidy_answer(await ctx.model.complete(messages, params), language)
            problem = answer_problem(answer.blocks)
        if not any(block.code.strip() for block in answer.blocks):
            await ctx.reply("The model gave me no code for that. Try rephrasing the request.")
        elif problem is not None:
            await ctx.reply(
                f"{answer.text}\n\n⚠️ This code still does not parse: {problem}. "
                "Check it before use."
            )
        else:
            await ctx.reply(answer.text)


async def _checked(
    ctx: SkillContext,
    request: Request,
    messages: list[ChatMessage],
    params: GenerationParams,
    config: CodeConfig,
) -> str | None:
    """The first candidate that passes its tests, with a sentence saying so (or the
    closest one, saying that none passed); None when no candidate's code parses."""
    own = given_tests(f"{request.text}\n{request.note}")
    if request.mode == "write":
        names = named_functions(request.text)
    else:  # the fixed code still defines what the broken code did
        names = re.findall(r"^\s*(?:async\s+)?def\s+(\w+)", request.text, re.MULTILINE)
    wants_tests = request.mode == "write" and not own
    answers, tests_answer = await generate(
        ctx.model,
        messages,
        params,
        config.candidates,
        config.candidate_temperature,
        tests_prompt(PROMPTS, request.text) if wants_tests else None,
    )
    tests = [f"assert callable({name}), '{name} is not defined'" for name in names]
    tests += own or written_tests(tests_answer, names)
    tidied = [tidy_answer(answer, request.language) for answer in answers]
    candidates = [
        (found.text, "\n\n".join(b.code for b in found.blocks if b.tag == "python"))
        for found in tidied
    ]
    limits = SandboxLimits(wall_s=config.check_timeout_s)
    best = await best_candidate(candidates, tests, limits)
    if best is None:
        log.info("code %s: no candidate parses; asking again", request.mode)
        return None
    return f"{best.text}\n\n{verdict(best.report, own=not wants_tests)}"


def _usage(prefix: str) -> str:
    command = f"{prefix}code"
    return (
        f"Usage: `{command} explain|review|fix|write <code or description>`; "
        "code may follow on the next lines, in a ``` block or bare.\n"
        f"- `{command} explain [x * 2 for x in xs if x]`: what the code does, step by step\n"
        f"- `{command} review` + a code block: bugs, risks and style, with suggestions\n"
        f"- `{command} fix def area(r): return 3.14 * r ^ 2`: the corrected code\n"
        f"- `{command} write a bash script that counts lines in *.py files`: new code"
    )
