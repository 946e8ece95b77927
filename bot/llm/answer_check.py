"""Whether a generated answer states the fact an expected answer states.

Used by the task score of ``confab model eval``. An exact-match rule would fail
a model that says "The capital of France is Paris." where the data says "Paris",
and a whole-sentence rule would fail every correct paraphrase of "Tarnwick
listens on port 7419 by default.". What makes such an answer right is its
*key terms*: the words that carry the fact and that a model cannot guess.

The rule, written out for whoever reads the scores:

1. Both texts are normalised: Unicode NFKC, case-folded, typographic quotes and
   dashes made plain, runs of whitespace made one space.
2. The key terms of the expected answer are its words (split on whitespace,
   surrounding punctuation and a possessive ``'s`` removed) that

   - contain a digit: ``7419``, ``3.2``, ``2000``;
   - look like an identifier, with ``.``, ``_``, ``/``, ``~``, ``@``, ``#`` or
     ``=`` inside: ``marsh.toml``, ``retention_days``, ``.tsnap``; or
   - contain a capital letter and are not a common function word: ``Paris``,
     ``Gossamer``, ``ISC``, ``Varga-Moreau``, but not ``The``, ``It``, ``She``.

3. Key terms the question already contains are not required: repeating them
   proves nothing, and "It listens on port 7419." answers "What port does
   Tarnwick use?" well. (When the question contains all of them, all are
   required.)
4. The generated answer is correct when every required key term appears in it
   as a whole word (``7419`` does not match ``17419``), in any case.
5. An expected answer with no key term ("yes", "every day") is correct when its
   whole normalised text, end punctuation removed, appears in the answer.

Plain lowercase words are never required, so wording may differ freely; a
wrong number, name or identifier is caught, and so is a missing one. What the
rule cannot judge is negation: "Tarnwick is not written in Rust." states every
key term of "Tarnwick is written in Rust.".
"""

from __future__ import annotations

import re
import unicodedata

# Capitalised at the start of a sentence, these carry no fact.
_FUNCTION_WORDS = """
    a an the this that these those it its it's he she they we you i i'm i've i'd i'll me my
    our your their his her them us there here every each all some any no not yes and but or
    nor so if then than when where which who whom whose what why how while as at by for from
    in into of on onto to with without about after before since until upon also just only
    please is are was were be been being do does did have has had can could will would shall
    should may might must one both either neither most many more much such
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())
_PLAIN = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
    }
)
_SPACE = re.compile(r"\s+")
_IDENTIFIER_MARKS = frozenset("._/~@#=")
_LEADING = "\"'([{<*`"
_TRAILING = "\"')]}>*`.,;:!?"


def normalised(text: str) -> str:
    """``text`` case-folded, with plain quotes and dashes and single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_PLAIN)
    return _SPACE.sub(" ", text).strip().casefold()


def _word(raw: str) -> str:
    word = raw.lstrip(_LEADING).rstrip(_TRAILING)
    return word[:-2] if word.endswith(("'s", "'S")) else word


def _is_key(word: str) -> bool:
    if any(character.isdigit() for character in word):
        return True
    if any(mark in word for mark in _IDENTIFIER_MARKS):
        return True
    return any(c.isupper() for c in word) and word.casefold() not in FUNCTION_WORDS


def key_terms(expected: str) -> tuple[str, ...]:
    """The normalised key terms of ``expected``, once each, in order of appearance."""
    plain = unicodedata.normalize("NFKC", expected).translate(_PLAIN)
    terms: dict[str, None] = {}
    for raw in plain.split():
        word = _word(raw)
        if word and _is_key(word):
            terms[word.casefold()] = None
    return tuple(terms)


def _appears(term: str, text: str) -> bool:
    # Whole words only, where the term itself starts or ends with a word character.
    before = r"(?<!\w)" if term[0].isalnum() or term[0] == "_" else ""
    after = r"(?!\w)" if term[-1].isalnum() or term[-1] == "_" else ""
    return re.search(before + re.escape(term) + after, text) is not None


def states_expected(generated: str, expected: str, question: str = "") -> bool:
    """Whether ``generated`` states what ``expected`` does, by the rule of this module.

    ``question`` is what the model was asked (its whole prompt's text, say).
    """
    text = normalised(generated)
    terms = key_terms(expected)
    if terms:
        asked = normalised(question)
        required = [term for term in terms if not _appears(term, asked)] or terms
        return all(_appears(term, text) for term in required)
    whole = normalised(expected).rstrip(_TRAILING)
    return bool(whole) and _appears(whole, text)
