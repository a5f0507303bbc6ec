"""`python -m tests.cluster up`: a test cluster for a person, until Ctrl-C.
`python -m tests.cluster build`: only build (or find) the binaries.

`up` builds or reuses the binaries, starts the control plane and the node agent, prints the
admin kubeconfig's path, and stops everything (and removes its files) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.cluster import build
from tests.cluster.cluster import Cluster


def up(kwok_nodes: int) -> int:
    try:
        binaries = build.ensure_binaries(lambda line: print(line, flush=True))
    except build.BuildError as error:
        print(f"cannot build the cluster binaries: {error}", file=sys.stderr)
        return 1
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    cluster = Cluster(binaries.bin_dir, kubernetes_version=build.kubernetes_version())
    with cluster:
        if kwok_nodes:
            names = cluster.kwok().add_nodes(kwok_nodes)
            print(f"simulated nodes: {', '.join(names)}")
        print(f"\nexport KUBECONFIG={cluster.kubeconfig}\n\nCtrl-C stops the cluster.", flush=True)
        try:
            while not stopped.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping the cluster", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start a cluster until Ctrl-C")
    start.add_argument("--kwok-nodes", type=int, default=0, help="also add simulated nodes")
    commands.add_parser("build", help="build or find the binaries, print their folder")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build.main([])
    return up(args.kwok_nodes)


if __name__ == "__main__":
    sys.exit(main())
