"""The Executions pages: the list (filter, pages), one execution (graph, states, history), and the
Start execution form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from flask import Flask, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from imgpipe.console import executions, history

if TYPE_CHECKING:
    from imgpipe.console.state import Console

#: How many previous pages' tokens a "Newer" link carries (beyond them it goes back to the first page).
TRAIL: Final = 20
#: StartExecution's input limit.
MAX_INPUT_BYTES: Final = 256 * 1024
DEFAULT_EXAMPLE: Final = "manual-execution.json"


def partial() -> bool:
    """An htmx request for a fragment (not a history restore, which wants the whole page)."""
    return request.headers.get("HX-Request") == "true" and "HX-History-Restore-Request" not in request.headers


def _page_args() -> tuple[str | None, str | None, list[str], int]:
    status = request.args.get("status") or None
    token = request.args.get("token") or None
    trail = request.args.getlist("trail")[-TRAIL:]
    try:
        size = int(request.args.get("size", "25"))
    except ValueError:
        abort(400, description=f"page size {request.args.get('size')!r} is not a number")
    return status, token, trail, size


def list_executions(console: Console) -> str | tuple[str, int]:
    status, token, trail, size = _page_args()
    try:
        page = console.lister.page(status, token, size)
    except executions.BadRequest as exc:
        abort(400, description=str(exc))
    base: dict[str, Any] = {"status": status, "size": size if size != 25 else None}
    links = {
        "next": url_for("executions_list", **base, token=page.next_token, trail=[*trail, token or ""])
        if page.next_token
        else None,
        "newer": url_for("executions_list", **base, token=trail[-1] or None, trail=trail[:-1]) if token else None,
        "first": url_for("executions_list", **base) if token else None,
        "self": url_for("executions_list", **base, token=token, trail=trail),
    }
    context: dict[str, Any] = {"page": page, "status": status, "size": size, "token": token, "links": links}
    context |= {"statuses": executions.STATUSES, "sizes": executions.PAGE_SIZES}
    template = "_executions_table.html" if partial() else "executions.html"
    return render_template(template, **context)


def _execution_context(console: Console, name: str) -> dict[str, Any]:
    try:
        described = executions.describe(console.backend.sfn, console.backend.state_machine_arn, name)
    except executions.NotFound:
        abort(404, description=f"no execution {name!r} of {console.backend.state_machine_arn}")
    shape = console.graph_for(described["executionArn"])
    live = executions.live(console.backend.sfn, described, shape)
    return {
        "name": name,
        "described": described,
        "key": executions.source_key(described.get("input")),
        "seconds": executions.seconds(described["startDate"], described.get("stopDate")),
        "input": history.shown(described.get("input")),
        "output": history.shown(described.get("output")),
        "shape": shape,
        "live": live,
        "running": described["status"] == "RUNNING",
    }


def examples(root: Path, bucket: str) -> dict[str, str]:
    """The inputs in events/*.json by file name, the stack's bucket in place of ``your-source-bucket``."""
    from localcloud.manual import PLACEHOLDER_BUCKET

    found = sorted(root.glob("*.json")) if root.is_dir() else []
    return {path.name: path.read_text(encoding="utf-8").replace(PLACEHOLDER_BUCKET, bucket) for path in found}


def check_input(text: str) -> str | None:
    """Why ``text`` cannot be an execution's input, or None when it can (any JSON value, up to 256 KiB)."""
    if not text.strip():
        return 'The input is empty: write a JSON document, for example {"bucket": "…", "key": "…"}.'
    if len(text.encode()) > MAX_INPUT_BYTES:
        return f"The input is {len(text.encode()):,} bytes: Step Functions takes at most {MAX_INPUT_BYTES:,}."
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"The input is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
    return None


def _start_form(console: Console, chosen: str | None, text: str | None, error: str | None) -> str:
    found = examples(console.examples, console.backend.source_bucket)
    if chosen not in found:
        chosen = DEFAULT_EXAMPLE if DEFAULT_EXAMPLE in found else next(iter(found), None)
    if text is None:
        blank = json.dumps({"bucket": console.backend.source_bucket, "key": ""}, indent=2) + "\n"
        text = found.get(chosen or "", blank)
    return render_template("start.html", examples=found, chosen=chosen, text=text, error=error)


def _seed_local_examples(console: Console) -> None:
    """On the local cloud, the objects the inputs in events/ name, once (as ``imgpipe start-execution``)."""
    from localcloud.cloud import Stack
    from localcloud.manual import seed_examples

    backend = console.backend
    with console.lock:
        if console.seeded or not backend.local or backend.endpoint is None:
            return
        console.seeded = True
    seed_examples(backend.endpoint, Stack(backend.stack_name, backend.outputs, {}))


def start_execution(console: Console) -> BaseResponse | tuple[str, int]:
    if request.form.get("csrf") != console.csrf:
        abort(
            400, description="This form is out of date (the console was restarted): reload the page and send it again."
        )
    text = request.form.get("input", "")
    chosen = request.form.get("example") or None
    error = check_input(text)
    if error is not None:
        return _start_form(console, chosen, text, error), 400
    if chosen is not None:
        _seed_local_examples(console)
    started = console.backend.sfn.start_execution(stateMachineArn=console.backend.state_machine_arn, input=text)
    return redirect(url_for("execution_page", name=executions.name_of(started["executionArn"])), code=303)


def register(app: Flask, console: Console) -> None:
    @app.get("/")
    def home() -> BaseResponse:
        return redirect(url_for("executions_list"))

    @app.get("/executions")
    def executions_list() -> str | tuple[str, int]:
        return list_executions(console)

    @app.get("/executions/<name>")
    def execution_page(name: str) -> str:
        return render_template("execution.html", **_execution_context(console, name))

    @app.get("/executions/<name>/live")
    def execution_live(name: str) -> str:
        return render_template("_execution_live.html", oob=True, **_execution_context(console, name))

    @app.get("/start")
    def start_page() -> str:
        return _start_form(console, request.args.get("input"), None, None)

    @app.post("/start")
    def start_submit() -> BaseResponse | tuple[str, int]:
        return start_execution(console)
