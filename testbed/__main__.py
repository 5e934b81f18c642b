"""`python -m testbed up|down|status`: the test bed in the background, for poking at by hand;
`kind-up|kind-down|kind-env`: the kind tier's cluster (testbed/kindcluster.py).

`up` prints shell `export` lines on stdout (so `eval "$(python -m testbed up)"` works) and a
summary on stderr; the database URL holds a password, so it is exported from its file rather
than printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from testbed import detached, kindcluster
from testbed.proc import TestbedError


def _redact(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, userinfo = head.rpartition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"


def _print_exports(state: detached.State) -> None:
    print(f"export KUBECONFIG={state.kubeconfig}")
    print(f'export DBMIGRATE_TEST_DATABASE_URL="$(cat {state.database_url_file})"')
    bin_dir = Path(state.kubectl).parent
    print(f"# kubectl: {state.kubectl}  (or: export PATH={bin_dir}:$PATH)", file=sys.stderr)
    print(f"# database: {_redact(state.database_url)}", file=sys.stderr)


def _print_kind_exports(cluster: kindcluster.KindCluster) -> None:
    for key, value in cluster.environment().items():
        if key == "DBMIGRATE_TEST_DATABASE_URL":
            print(f'export {key}="$(cat {cluster.state / "database-url"})"')
            print(f"# database: {_redact(value)}", file=sys.stderr)
        else:
            print(f"export {key}={value}")


def _kind(command: str) -> int:
    cluster = kindcluster.from_env()
    if command == "kind-up":
        cluster.up()
        _print_kind_exports(cluster)
        print(f"# kubectl --kubeconfig {cluster.kubeconfig} get nodes", file=sys.stderr)
    elif command == "kind-down":
        gone = cluster.down()
        said = "deleted" if gone else "there was no kind cluster"
        print(f"{said} {cluster.name!r}", file=sys.stderr)
    else:
        if not cluster.exists():
            print(f"no kind cluster {cluster.name!r} (make kind-up)", file=sys.stderr)
            return 1
        _print_kind_exports(cluster)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    parser.add_argument(
        "command", choices=("up", "down", "status", "kind-up", "kind-down", "kind-env")
    )
    parser.add_argument(
        "--state-dir", type=Path, default=detached.DEFAULT_STATE, help="default: .testbed/"
    )
    args = parser.parse_args(argv)
    try:
        if args.command.startswith("kind-"):
            return _kind(args.command)
        if args.command == "up":
            state = detached.up(args.state_dir)
            timings = ", ".join(f"{k} {v:.1f} s" for k, v in state.timings.items())
            print(f"# test bed up ({timings}); logs in {state.state_dir}", file=sys.stderr)
            _print_exports(state)
            print("# stop it with: python -m testbed down", file=sys.stderr)
        elif args.command == "down":
            stopped = detached.down(args.state_dir)
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
        else:
            report = detached.status(args.state_dir)
            if not report:
                print("the test bed is not up (python -m testbed up)", file=sys.stderr)
                return 1
            for part, health in report.items():
                print(f"{part:24} {health}")
            recorded = detached.read_state(args.state_dir)
            if recorded is not None:
                _print_exports(recorded)
            return 0 if all(h in ("running", "ready") for h in report.values()) else 1
    except TestbedError as exc:
        print(f"test bed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
