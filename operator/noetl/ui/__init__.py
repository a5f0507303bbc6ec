"""`noetl ui`: a web view of playbooks and executions, local runs and a cluster's alike, live.

`model` is the neutral picture the pages show; `sources` fill it (event logs, the API server);
`layout` and `svg` draw a step graph; `server` serves the pages and their live updates;
`access` says who may act (cancel, suspend, resume, retry) through them.
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
    token: str | None = None,
) -> None:
    """Serve until interrupted. Actions on an address beyond loopback need an access token: the
    one given, else one made now and printed (as a link that signs in)."""
    import secrets

    from aiohttp import web

    from noetl.ui.access import Access, is_loopback
    from noetl.ui.server import build

    made = actions and not token and not is_loopback(host)
    if made:
        token = secrets.token_urlsafe(24)
    access = Access(token or None, loopback_only=is_loopback(host))
    ui = build(runs, playbooks, namespaces, actions=actions, cluster=cluster, access=access)
    for note in ui.notes:
        print(note, flush=True)
    if made:
        link = f"http://{host}:{port}/?token={token}"
        print(f"actions need the access token: open {link}", flush=True)
    web.run_app(ui.app(), host=host, port=port, print=lambda text: print(text, flush=True))
