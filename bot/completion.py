"""``confab completion bash|zsh``: a shell completion script for the ``confab`` command.

The script is generated from the command's own argparse tree, so it names the
commands installed plugins add (``confab slack manifest``) and never goes out
of date. It completes subcommands, options, and the choices of an option that
has them (``--model bundled|openai``); other option values complete as file
names. Load it with ``source <(confab completion bash)`` (likewise for zsh,
after ``compinit``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass

COMPLETION_COMMANDS = ("completion",)
SHELLS = ("bash", "zsh")


def add_completion_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=SHELLS, help="the shell it is for")


def run_completion_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    sys.stdout.write(completion_script(parser, args.shell))
    return 0


@dataclass(frozen=True)
class CommandLevel:
    """One command of the tree (``()`` is ``confab`` itself, ``("db", "export")`` a leaf)."""

    path: tuple[str, ...]
    # What may come next that is not an option: subcommands, a positional's choices.
    words: tuple[str, ...]
    options: tuple[str, ...]
    # Options taking a value, with their choices (empty: any value, e.g. a file name).
    valued: dict[str, tuple[str, ...]]


def command_levels(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[CommandLevel]:
    """Every command of ``parser``'s tree, parents before their subcommands."""
    subcommands: list[tuple[str, argparse.ArgumentParser]] = []
    words: list[str] = []
    options: list[str] = []
    valued: dict[str, tuple[str, ...]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommands += action.choices.items()
            words += action.choices
        elif not action.option_strings:
            words += (str(choice) for choice in action.choices or ())
        else:
            options += action.option_strings
            if action.nargs != 0:
                choices = tuple(str(choice) for choice in action.choices or ())
                valued.update(dict.fromkeys(action.option_strings, choices))
    yield CommandLevel(path, tuple(words), tuple(options), valued)
    for name, child in subcommands:
        yield from command_levels(child, (*path, name))


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser``'s command for ``shell`` (bash or zsh)."""
    if shell not in SHELLS:
        raise ValueError(f"no completion for {shell!r}; one of {', '.join(SHELLS)}")
    name = parser.prog
    levels = list(command_levels(parser))
    tables = _tables(name, levels)
    if shell == "bash":
        return BASH.format(name=name, tables=tables)
    return ZSH.format(name=name, tables=tables)


def _case(function: str, rows: list[tuple[str, str]], otherwise: str = "") -> str:
    body = "".join(f'        "{key}") {value} ;;\n' for key, value in rows)
    tail = f"        *) {otherwise} ;;\n" if otherwise else ""
    return f'{function}() {{\n    case "$1" in\n{body}{tail}    esac\n}}\n'


def _tables(name: str, levels: list[CommandLevel]) -> str:
    """Shell functions (the same in bash and zsh) answering, for a command path:
    the words that may follow, its options, whether an option takes a value, and
    that option's choices."""
    prefix = f"_{name}"
    children = [(" ".join(lv.path), f'echo "{" ".join(lv.words)}"') for lv in levels]
    options = [(" ".join(lv.path), f'echo "{" ".join(lv.options)}"') for lv in levels]
    valued = [
        (" ".join((*lv.path, option)).strip(), f'echo "{" ".join(choices)}"')
        for lv in levels
        for option, choices in lv.valued.items()
    ]
    return (
        _case(f"{prefix}_children", children)
        + _case(f"{prefix}_options", options)
        + "# The choices of an option that takes a value; status 1 for one that takes none.\n"
        + _case(f"{prefix}_values", valued, "return 1")
    )


BASH = """\
# bash completion for {name}; load it with: source <({name} completion bash)
{tables}
_{name}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd="" word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        # An option's value is not a subcommand.
        ((i > 1)) && _{name}_values "${{cmd:+$cmd }}${{COMP_WORDS[i-1]}}" >/dev/null && continue
        if [[ " $(_{name}_children "$cmd") " == *" $word "* ]]; then
            cmd="${{cmd:+$cmd }}$word"
        fi
    done
    local values prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    if ((COMP_CWORD > 1)) && values="$(_{name}_values "${{cmd:+$cmd }}$prev")"; then
        # No choices: nothing here, and -o default completes file names.
        COMPREPLY=($(compgen -W "$values" -- "$cur"))
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_{name}_options "$cmd")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_{name}_children "$cmd")" -- "$cur"))
    fi
}}
complete -o default -F _{name} {name}
"""

ZSH = """\
#compdef {name}
# zsh completion for {name}; load it after compinit with: source <({name} completion zsh)
{tables}
_{name}() {{
    local cur="${{words[CURRENT]}}" cmd="" word values i
    local -a candidates
    for ((i = 2; i < CURRENT; i++)); do
        word="${{words[i]}}"
        # An option's value is not a subcommand.
        ((i > 2)) && _{name}_values "${{cmd:+$cmd }}${{words[i-1]}}" >/dev/null && continue
        if [[ " $(_{name}_children "$cmd") " == *" $word "* ]]; then
            cmd="${{cmd:+$cmd }}$word"
        fi
    done
    if ((CURRENT > 2)) && values="$(_{name}_values "${{cmd:+$cmd }}${{words[CURRENT-1]}}")"; then
        candidates=(${{=values}})
        if ((${{#candidates}})); then compadd -a candidates; else _files; fi
        return
    fi
    if [[ "$cur" == -* ]]; then
        candidates=(${{=$(_{name}_options "$cmd")}})
    else
        candidates=(${{=$(_{name}_children "$cmd")}})
    fi
    compadd -a candidates
}}
compdef _{name} {name}
"""
