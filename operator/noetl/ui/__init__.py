"""`noetl ui`: a web view of playbooks and executions, local runs and a cluster's alike, live.

`model` is the neutral picture the pages show; `sources` fill it (event logs, the API server);
`layout` and `svg` draw a step graph; `server` serves the pages and their live updates.
"""

from __future__ import annotations

from pathlib import Path


def serve(
    host: str,
    port: int,
    runs: Path,
    playbooks: Path | None,
    namespaces: list[str] | None,
    actions: bool,
    cluster: bool,
) -> None:
    from aiohttp import web

    from noetl.ui.server import build

    ui = build(runs, playbooks, namespaces, actions=actions, cluster=cluster)
    for note in ui.notes:
        print(note, flush=True)
    web.run_app(ui.app(), host=host, port=port, print=lambda text: print(text, flush=True))
