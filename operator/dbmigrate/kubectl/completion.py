"""Shell completion: ``kubectl dbmigrate <TAB>`` through kubectl, and the plugin on its own.

kubectl (1.26+) completes a plugin's arguments by running ``kubectl_complete-<plugin>`` from
PATH with the words typed after the plugin's name, the last one being the word to complete
(empty for a new word), and reads one completion per line, then ``:<directive>`` (Cobra's
protocol; 4 = no file names). ``complete_main`` is that executable (installed with the package,
like ``kubectl-dbmigrate``). ``completion bash|zsh`` prints a script that makes the same
completer serve ``kubectl-dbmigrate`` typed directly. Commands, options and option values come
from the real parser, so completion cannot drift from the commands; resource names come from the
API server with the ``--kubeconfig``/``--context``/``-n`` already typed (none when it cannot be
reached: a completion must never print errors into the prompt).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from dbmigrate.api.exitcodes import EXIT_OK
from dbmigrate.kubectl.client import MIGRATIONS, ROLLOUTS, Client, PluginError, Target
from dbmigrate.kubectl.main import subcommand
from dbmigrate.kubectl.objects import meta

NO_FILES = 4  # cobra.ShellCompDirectiveNoFileComp
NAMED_BY = {"promote": ROLLOUTS}  # the rest name a DatabaseMigration
TARGET_FLAGS = {
    "--kubeconfig": "kubeconfig",
    "--context": "context",
    "-n": "namespace",
    "--namespace": "namespace",
}

BASH = """# bash completion of kubectl-dbmigrate (kubectl dbmigrate <TAB> needs none of this:
# kubectl asks kubectl_complete-dbmigrate itself).
# Load it: source <(kubectl dbmigrate completion bash)
_kubectl_dbmigrate() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out
    out=$(kubectl_complete-dbmigrate "${COMP_WORDS[@]:1:$((COMP_CWORD-1))}" "$cur" 2>/dev/null)
    local IFS=$'\\n'
    COMPREPLY=($(compgen -W "$(printf '%s\\n' "$out" | grep -v '^:')" -- "$cur"))
}
complete -F _kubectl_dbmigrate kubectl-dbmigrate
"""
ZSH = """#compdef kubectl-dbmigrate
# zsh completion of kubectl-dbmigrate (kubectl dbmigrate <TAB> needs none of this: kubectl
# asks kubectl_complete-dbmigrate itself). Load it: source <(kubectl dbmigrate completion zsh)
_kubectl_dbmigrate() {
    local -a comps
    comps=("${(@f)$(kubectl_complete-dbmigrate "${words[@]:1:$((CURRENT-2))}" \\
        "${words[CURRENT]}" 2>/dev/null)}")
    comps=(${comps:#:*})
    compadd -- $comps
}
compdef _kubectl_dbmigrate kubectl-dbmigrate
"""
SCRIPTS = {"bash": BASH, "zsh": ZSH}

Lister = Callable[[str, Target], list[str]]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def list_names(command: str, target: Target) -> list[str]:
    """Names of the resources ``command`` takes, in the namespace the typed flags chose."""
    try:
        kube = Client(target, timeout=3.0)
    except PluginError:
        return []
    try:
        return sorted(
            str(meta(o).get("name")) for o in kube.items(NAMED_BY.get(command, MIGRATIONS))
        )
    except PluginError:
        return []  # no completion rather than an error inside the person's prompt
    finally:
        kube.close()


def complete(words: Sequence[str], parser: argparse.ArgumentParser, names: Lister) -> list[str]:
    """The completions of the last of ``words`` (the words after ``kubectl dbmigrate``)."""
    *done, current = list(words) or [""]
    commands = _subparsers(parser)
    chosen = next((w for w in done if w in commands), None)
    here = commands[chosen] if chosen else parser
    options = _options(here)
    if done and done[-1] in options and options[done[-1]].nargs != 0:
        action = options[done[-1]]
        return [str(c) for c in action.choices or [] if str(c).startswith(current)]
    if current.startswith("-"):
        return sorted(f for f in options if f.startswith(current) and f.startswith("--"))
    if chosen is None:
        return [c for c in commands if c.startswith(current)]
    positionals = [a for a in here._actions if not a.option_strings and a.dest != "help"]
    given = [
        w
        for i, w in enumerate(done)
        if w != chosen
        and not w.startswith("-")
        and not (i > 0 and done[i - 1] in options and options[done[i - 1]].nargs != 0)
    ]
    if len(given) >= len(positionals):
        return []
    wanted = positionals[len(given)]
    if wanted.choices:
        return [str(c) for c in wanted.choices if str(c).startswith(current)]
    values = {TARGET_FLAGS[w]: done[i + 1] for i, w in enumerate(done[:-1]) if w in TARGET_FLAGS}
    target = Target(values.get("kubeconfig"), values.get("context"), values.get("namespace"))
    return [n for n in names(chosen, target) if n.startswith(current)]


def complete_main(argv: Sequence[str] | None = None) -> int:
    """``kubectl_complete-dbmigrate WORD... CURRENT``: completions, then the directive."""
    from dbmigrate.kubectl.main import build_parser

    words = list(sys.argv[1:] if argv is None else argv)
    for line in complete(words, build_parser(), list_names):
        print(line)
    print(f":{NO_FILES}")
    return EXIT_OK


def script(args: argparse.Namespace) -> int:
    sys.stdout.write(SCRIPTS[args.shell])
    return EXIT_OK


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subcommand(
        subparsers,
        common,
        "completion",
        "print a shell completion script for kubectl-dbmigrate (bash or zsh)",
        "  source <(kubectl dbmigrate completion bash)    # in ~/.bashrc\n"
        "  source <(kubectl dbmigrate completion zsh)     # in ~/.zshrc\n"
        "  # kubectl dbmigrate <TAB> works without it, through kubectl_complete-dbmigrate",
    )
    parser.add_argument("shell", choices=sorted(SCRIPTS))
    parser.set_defaults(func=script)


def entry() -> None:
    """The console script ``kubectl_complete-dbmigrate``."""
    sys.exit(complete_main())
