"""The web server of `noetl ui`: HTML pages with their content in them, and server-sent events
that keep an open Execution page up to date.

aiohttp serves (kopf already depends on it); Jinja2, already the templating engine of playbooks,
renders the pages with autoescaping. Each page works without script: the graph's steps are links,
tables hold every fact as text. The script only swaps states in place and opens a step's detail
beside the graph.

The list of executions follows the sources' changes the same way (`/executions/live`, the rows
as HTML). Actions (cancel, suspend, resume, retry) are plain POST forms that redirect back to a
page, so they work without script too; they are off unless asked for (`actions`), and each
passes the checks of `noetl.ui.access` before its source carries it out.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
from aiohttp import web

from noetl.ui.access import Access
from noetl.ui.model import (
    ACTIONS,
    LOCAL,
    ExecutionSummary,
    ExecutionView,
    PlaybookView,
    StepView,
    format_duration,
    format_time,
)
from noetl.ui.sources import ActionRefused, Source
from noetl.ui.svg import SYMBOLS, render_graph, state_class, state_label

T = TypeVar("T")
log = logging.getLogger(__name__)
SHOWN_BYTES = 64 * 1024  # of a result or args: more is cut, with a note
KEEPALIVE_SECONDS = 15  # a comment sent on a quiet stream, so that a closed page is noticed
RELIST_SECONDS = 0.5  # the list is read again at most this often while a list page is open


def pretty(value: Any) -> str:
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    if len(text) > SHOWN_BYTES:
        return text[:SHOWN_BYTES] + f"\n… ({len(text) - SHOWN_BYTES} more characters not shown)"
    return text


def execution_url(row: ExecutionSummary) -> str:
    return f"/executions/{quote(row.namespace)}/{quote(row.name)}"


def playbook_url(playbook: PlaybookView) -> str:
    return f"/playbooks/{quote(playbook.namespace)}/{quote(playbook.name)}"


def validity(playbook: PlaybookView) -> str:
    return {True: "Valid", False: "Invalid", None: "Pending"}[playbook.valid]


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("noetl.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        state_class=state_class,
        symbol=lambda state: SYMBOLS.get(state, ""),
        step_label=state_label,
        format_time=format_time,
        format_duration=format_duration,
        pretty=pretty,
        execution_url=execution_url,
        playbook_url=playbook_url,
        validity=validity,
    )
    return environment


def live_state(view: ExecutionView) -> dict[str, Any]:
    """What an open page needs to restyle itself: the phase and each step's state, as text."""

    def state(value: str, label: str | None = None) -> dict[str, str]:
        return {
            "css": state_class(value),
            "symbol": SYMBOLS.get(value, ""),
            "label": label or value,
        }

    def step(item: StepView) -> dict[str, str]:
        return {**state(item.state, state_label(item)), "message": item.message or ""}

    return {
        "phase": state(view.phase),
        "duration": format_duration(view.duration),
        "error": view.error,
        "finished": view.finished_run or view.phase == "Interrupted",
        "actions": list(view.actions),
        "steps": {name: step(item) for name, item in view.steps.items()},
    }


class UI:
    def __init__(
        self,
        sources: list[Source],
        notes: list[str] | None = None,
        actions: bool = False,
        access: Access | None = None,
    ) -> None:
        self.sources = sources
        self.notes = notes or []
        self.actions = actions
        self.access = access or Access()
        self.templates = _environment()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.access.sign_in, _source_failures])
        app.add_routes(
            [
                web.get("/", self.home),
                web.get("/healthz", self.health),
                web.get("/static/{file}", self.static),
                web.get("/executions", self.executions),
                web.get("/executions/live", self.executions_live),
                web.get("/executions/{namespace}/{name}", self.execution),
                web.get("/executions/{namespace}/{name}/live", self.live),
                web.get("/executions/{namespace}/{name}/steps/{step}", self.step),
                web.post("/executions/{namespace}/{name}/{action}", self.act),
                web.get("/playbooks", self.playbooks),
                web.get("/playbooks/{namespace}/{name}", self.playbook),
            ]
        )
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _: web.Application) -> None:
        for source in self.sources:
            await source.close()

    def _page(
        self, template: str, section: str, problems: Iterable[str] = (), **context: Any
    ) -> web.Response:
        html = self.templates.get_template(template).render(
            section=section, notes=[*self.notes, *problems], **context
        )
        return web.Response(text=html, content_type="text/html")

    async def _from_every_source(
        self, ask: Callable[[Source], Awaitable[list[T]]]
    ) -> tuple[list[T], list[str]]:
        """What every source answers; a source that fails (a cluster out of reach) becomes a note
        on the page instead of failing it."""
        answers = await asyncio.gather(*(ask(s) for s in self.sources), return_exceptions=True)
        found: list[T] = []
        problems = []
        for source, answer in zip(self.sources, answers, strict=True):
            if isinstance(answer, BaseException):
                problems.append(f"{source.name}: {type(answer).__name__}: {answer}"[:300])
            else:
                found += answer
        return found, problems

    def _source(self, namespace: str) -> Source:
        for source in self.sources:
            if source.owns(namespace):
                return source
        raise web.HTTPNotFound(text=f"no source of executions in namespace {namespace}")

    async def home(self, _: web.Request) -> web.Response:
        raise web.HTTPFound("/executions")

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in ("ui.css", "ui.js"):
            raise web.HTTPNotFound()
        text = resources.files("noetl.ui").joinpath("static", name).read_text()
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(text=text, content_type=kind)

    async def _rows(self, request: web.Request) -> tuple[dict[str, Any], list[str]]:
        """The executions the list shows (those its filters choose), and the filters."""
        rows, problems = await self._from_every_source(lambda source: source.executions())
        fields = (("phase", "Phase"), ("playbook", "Playbook"), ("namespace", "Namespace"))
        chosen = {field: request.query.get(field, "") for field, _ in fields}
        filters = [
            (field, label, sorted({getattr(row, field) for row in rows})) for field, label in fields
        ]
        shown = [
            row
            for row in rows
            if all(not value or getattr(row, field) == value for field, value in chosen.items())
        ]
        shown.sort(key=lambda row: row.started or 0, reverse=True)
        return {"rows": shown, "filters": filters, "chosen": chosen}, problems

    async def executions(self, request: web.Request) -> web.Response:
        listing, problems = await self._rows(request)
        return self._page("executions.html", "executions", problems, **listing)

    async def executions_live(self, request: web.Request) -> web.StreamResponse:
        """The rows of the list, sent again whenever a source says something may have changed
        and they read differently."""
        response = await _event_stream(request)
        changed = asyncio.Event()

        async def note(source: Source) -> None:
            async for _ in source.every_change():
                changed.set()

        watchers = [asyncio.create_task(note(source)) for source in self.sources]
        rows = self.templates.get_template("execution_rows.html")
        shown = None
        try:
            while True:
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                changed.clear()
                listing, _ = await self._rows(request)
                html = rows.render(**listing)
                if html != shown:
                    shown = html
                    await _send(response, "rows", html)
                await asyncio.sleep(RELIST_SECONDS)  # changes meanwhile make one look, not many
        finally:
            for watcher in watchers:
                watcher.cancel()

    async def _view(self, request: web.Request) -> tuple[Source, ExecutionView]:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        source = self._source(namespace)
        view = await source.execution(namespace, name)
        if view is None:
            raise web.HTTPNotFound(text=f"no execution {name} in {namespace}")
        return source, view

    async def execution(self, request: web.Request) -> web.Response:
        source, view = await self._view(request)
        base = execution_url(view)
        selected = request.query.get("step")
        detail = await source.step(view.namespace, view.name, selected) if selected else None
        events = None if view.namespace == LOCAL else await source.events(view.namespace, view.name)
        return self._page(
            "execution.html",
            "executions",
            view=view,
            base=base,
            graph=render_graph(view.graph, view.steps, f"{base}/steps/"),
            steps=sorted(view.steps.values(), key=_step_order(view)),
            detail=detail,
            events=events,
            actions=ACTIONS if self.actions and self.access.signed_in(request) else (),
            sign_in=self.actions and not self.access.signed_in(request),
            token=self.access.form_token,
        )

    async def step(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        step = request.match_info["step"]
        detail = await self._source(namespace).step(namespace, name, step)
        if detail is None:
            raise web.HTTPNotFound(text=f"no step {step} in execution {name}")
        base = f"/executions/{quote(namespace)}/{quote(name)}"
        if request.query.get("partial"):
            html = self.templates.get_template("step_detail.html").render(detail=detail)
            return web.Response(text=html, content_type="text/html")
        return self._page("step.html", "executions", detail=detail, base=base, execution=name)

    async def live(self, request: web.Request) -> web.StreamResponse:
        source, view = await self._view(request)
        response = await _event_stream(request)

        async def send(current: ExecutionView) -> None:
            await _send(response, "state", live_state(current))

        await send(view)
        async for _ in source.changes(view.namespace, view.name):
            current = await source.execution(view.namespace, view.name)
            if current is not None:
                await send(current)
        final = await source.execution(view.namespace, view.name)
        if final is not None:
            await send(final)
        return response

    async def act(self, request: web.Request) -> web.Response:
        """An action, once `noetl.ui.access` lets it through and it applies to the execution as
        it is now; then back to the page of the execution (of the new one, for a retry)."""
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound(text=f"no action {action}: there are {', '.join(ACTIONS)}")
        if not self.actions:
            raise web.HTTPForbidden(text="actions are off in this view (noetl ui --actions)")
        refusal = self.access.refusal(request, await request.post())
        if refusal:
            raise web.HTTPForbidden(text=refusal)
        source, view = await self._view(request)
        if action not in view.actions:
            raise web.HTTPConflict(text=f"{view.name} is {view.phase}: {action} does not apply")
        try:
            if action == "retry":
                name = await source.retry(view.namespace, view.name)
            else:
                await getattr(source, action)(view.namespace, view.name)
                name = view.name
        except ActionRefused as refused:
            raise web.HTTPConflict(text=str(refused)) from None
        raise web.HTTPSeeOther(f"/executions/{quote(view.namespace)}/{quote(name)}")

    async def playbooks(self, _: web.Request) -> web.Response:
        found, problems = await self._from_every_source(lambda source: source.playbooks())
        found.sort(key=lambda p: (p.namespace, p.name))
        return self._page("playbooks.html", "playbooks", problems, playbooks=found)

    async def playbook(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        for playbook in await self._source(namespace).playbooks():
            if (playbook.namespace, playbook.name) == (namespace, name):
                graph = render_graph(playbook.graph, None, "#step-")
                return self._page("playbook.html", "playbooks", playbook=playbook, graph=graph)
        raise web.HTTPNotFound(text=f"no playbook {name} in {namespace}")


@web.middleware
async def _source_failures(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A source that cannot answer (a cluster out of reach, a refusal) is a 502 saying why."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as error:
        log.exception("%s %s failed", request.method, request.path)
        reason = f"{type(error).__name__}: {error}"[:500]
        raise web.HTTPBadGateway(text=f"could not read it: {reason}") from None


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


async def _send(response: web.StreamResponse, event: str, data: Any) -> None:
    text = json.dumps(data, separators=(",", ":"))
    await response.write(f"event: {event}\ndata: {text}\n\n".encode())


def _step_order(view: ExecutionView) -> Callable[[StepView], tuple[float, int]]:
    """Steps in the order they started; those that did not start yet in the graph's order."""
    position = {name: i for i, name in enumerate(view.graph.nodes)}
    return lambda step: (step.started or float("inf"), position.get(step.name, 0))


def build(
    runs: Path,
    playbooks: Path | None,
    namespaces: list[str] | None = None,
    actions: bool = False,
    cluster: bool = True,
    access: Access | None = None,
) -> UI:
    """The UI over local runs and, when a kubeconfig (or a service account) is there, a cluster."""
    from noetl.ui.sources.local import LocalRuns

    sources: list[Source] = [LocalRuns(runs, playbooks)]  # first: it owns the namespace "local"
    notes = []
    if cluster:
        try:
            from noetl.kube.kubeconfig import load_kube_config
            from noetl.ui.sources.cluster import ClusterRuns

            sources.append(ClusterRuns(load_kube_config(), namespaces))
        except Exception as error:  # no kubeconfig, or one that does not load
            notes.append(f"cluster: not shown ({type(error).__name__}: {error})"[:200])
    return UI(sources, notes, actions, access)
