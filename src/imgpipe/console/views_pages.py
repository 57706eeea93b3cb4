"""The Uploads and Messages pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, abort, render_template, request

from imgpipe.console import messages
from imgpipe.console.uploads import ApiError, waiting
from imgpipe.console.views_executions import partial

if TYPE_CHECKING:
    from imgpipe.console.state import Console


def _uploads_context(console: Console) -> dict[str, Any]:
    token = request.args.get("next") or None
    found: dict[str, Any] = {"items": [], "next": None, "error": None, "token": token}
    if console.uploads is None:
        return found
    try:
        found["items"], found["next"] = console.uploads.newest(12, token)
    except ApiError as exc:
        found["error"] = str(exc)
    found["busy"] = any(waiting(item) for item in found["items"])
    return found


def _inbox_context(console: Console) -> dict[str, Any]:
    kind = request.args.get("kind") or None
    if kind is not None and kind not in messages.KINDS:
        abort(400, description=f"unknown kind {kind!r}: one of {', '.join(messages.KINDS)}")
    inbox = console.inbox
    return {
        "kind": kind,
        "kinds": messages.KINDS,
        "inbox": inbox,
        "received": inbox.messages(kind) if inbox else [],
    }


def _dlq_context(console: Console) -> dict[str, Any]:
    url = console.backend.outputs.get("DeadLetterQueueUrl")
    if url is None:
        return {"dlq": None, "dlq_error": None}
    try:
        return {"dlq": messages.peek(console.backend.sqs, url), "dlq_error": None}
    except (BotoCoreError, ClientError) as exc:
        return {"dlq": None, "dlq_error": str(exc)}


def register(app: Flask, console: Console) -> None:
    @app.get("/uploads")
    def uploads_page() -> str:
        template = "_uploads_list.html" if partial() else "uploads.html"
        return render_template(
            template, api_url=console.backend.api_url, api_token=console.api_token, **_uploads_context(console)
        )

    @app.get("/uploads/<upload_id>")
    def upload_page(upload_id: str) -> str:
        if console.uploads is None:
            abort(404, description="this stack has no upload API (no ApiUrl output)")
        try:
            item = console.uploads.view(upload_id)
        except ApiError as exc:
            abort(502, description=str(exc))
        if item is None:
            abort(404, description=f"no upload {upload_id!r}")
        return render_template("upload.html", item=item, busy=waiting(item))

    @app.get("/messages")
    def messages_page() -> str:
        if partial():
            return render_template("_messages_list.html", **_inbox_context(console))
        return render_template("messages.html", **_inbox_context(console), **_dlq_context(console))

    @app.get("/messages/dead-letter")
    def dead_letter() -> str:
        return render_template("_dead_letter.html", **_dlq_context(console))
