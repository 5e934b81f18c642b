"""Entry point of ``kubectl-dbmigrate`` (``kubectl dbmigrate ...``).

kubectl finds the plugin on PATH and passes it every argument after ``dbmigrate``. Each group of
sub-commands lives in its own module with ``register(subparsers, common)``; ``common`` holds the
flags every command takes, spelled as kubectl spells them (``--kubeconfig``, ``--context``,
``-n/--namespace``), accepted before or after the sub-command. A failure prints one line, what
went wrong and what to do, and exits with the code of ``api/exitcodes.py``; passwords never
reach the terminal (the output passes the same redaction as ``dbmigrate``'s).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dbmigrate import __version__
from dbmigrate.api.durations import InvalidDuration, parse_duration
from dbmigrate.api.exitcodes import EXIT_BROKEN_PIPE, EXIT_USAGE
from dbmigrate.kubectl.client import Client, PluginError, Target

PROG = "kubectl dbmigrate"
COMMAND_MODULES = {
    "status": "dbmigrate.kubectl.status",
    "get": "dbmigrate.kubectl.tree",
    "tree": "dbmigrate.kubectl.tree",
    "approve": "dbmigrate.kubectl.annotate",
    "pause": "dbmigrate.kubectl.annotate",
    "resume": "dbmigrate.kubectl.annotate",
    "retry": "dbmigrate.kubectl.annotate",
    "promote": "dbmigrate.kubectl.annotate",
    "rollback": "dbmigrate.kubectl.rollback",
    "logs": "dbmigrate.kubectl.logs",
    "report": "dbmigrate.kubectl.report",
    "wait": "dbmigrate.kubectl.wait",
    "completion": "dbmigrate.kubectl.completion",
}
VALUE_FLAGS = ("--kubeconfig", "--context", "-n", "--namespace")  # the common flags' values
EXIT_CODES = """exit codes (every command):
  0    done: what was asked happened (wait: the migration is Ready)
  1    failed: the migration failed or was rolled back (wait), a request was refused or
       failed (rollback), the API server refused the call (forbidden), a confirmation was
       not given
  2    bad usage: an unknown option, a resource that does not exist, a resource type this
       cluster does not serve
  3    unavailable, may heal: the API server cannot be reached, or --timeout passed while
       the operator was still working (wait, retry, rollback)
  130  interrupted (Ctrl-C)"""


def common_flags(suppress: bool) -> argparse.ArgumentParser:
    """The flags of every command (defaults suppressed on one of the two parsers that carry
    them, so a flag given before the sub-command is not reset after it)."""
    parser = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("cluster (as for kubectl)")
    group.add_argument("--kubeconfig", default=default, help="kubeconfig file")
    group.add_argument("--context", default=default, help="kubeconfig context")
    group.add_argument("-n", "--namespace", default=default, help="namespace of the resource")
    return parser


def seconds(text: str) -> float:
    """A time span as kubectl's flags take it: ``30s``, ``5m``, ``1h30m``, or plain seconds."""
    value = text.strip()
    try:
        return (
            float(value)
            if value.replace(".", "", 1).isdigit()
            else (parse_duration(value).total_seconds())
        )
    except InvalidDuration as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def connect(args: argparse.Namespace) -> Client:
    """The API client the common flags ask for."""
    return Client(Target(args.kubeconfig, args.context, args.namespace))


def _modules_for(argv: Sequence[str]) -> list[str]:
    """Only the module of the command asked for (a command starts faster); all for help."""
    words = iter(argv)
    for word in words:
        if word in VALUE_FLAGS:
            next(words, None)  # its value, which may spell a command's name
        elif not word.startswith("-"):
            if word in COMMAND_MODULES:
                return [COMMAND_MODULES[word]]
            break
    return list(dict.fromkeys(COMMAND_MODULES.values()))


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run, watch and undo dbmigrate's DatabaseMigrations from a terminal. Every "
        "command reads and writes the same API objects a GitOps workflow would.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_flags(False)],
    )
    parser.add_argument("--version", action="version", version=f"kubectl-dbmigrate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_flags(True)
    for module in _modules_for(argv):
        importlib.import_module(module).register(subparsers, common)
    return parser


def subcommand(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    summary: str,
    examples: str,
) -> argparse.ArgumentParser:
    """Add one sub-command with its summary, the common flags and its examples in --help."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"examples:\n{examples}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen command; returns the exit code."""
    from dbmigrate.cli.main import redacted_output

    arguments = list(sys.argv[1:] if argv is None else argv)
    with redacted_output(arguments):
        parser = build_parser(arguments)
        args = parser.parse_args(arguments)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        try:
            code = int(args.func(args))
            sys.stdout.flush()
        except PluginError as exc:
            sys.stdout.flush()
            sys.stderr.write(f"error: {exc}\n")
            return exc.code
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            return 130
        except BrokenPipeError:
            return EXIT_BROKEN_PIPE
    return code


def entry() -> None:
    """The console script ``kubectl-dbmigrate``."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
