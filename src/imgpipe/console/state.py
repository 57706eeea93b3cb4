"""What the console's pages share, made once: the stack, the listing, the upload API, the inbox."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgpipe.console import executions
from imgpipe.console.backend import Backend
from imgpipe.console.messages import Inbox
from imgpipe.console.uploads import Uploads, UploadsApi


@dataclass
class Console:
    """Everything the pages share, made once."""

    backend: Backend
    examples: Path
    inbox: Inbox | None = None
    api_token: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    lister: executions.Lister = field(init=False)
    uploads: Uploads | None = field(init=False)
    graphs: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    seeded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        backend = self.backend
        self.lister = executions.Lister(backend.sfn, backend.state_machine_arn)
        api = UploadsApi(backend.api_url, self.api_token) if backend.api_url else None
        self.uploads = Uploads(api, backend.s3, backend.destination_bucket, backend.upload_prefix) if api else None

    def graph_for(self, arn: str) -> dict[str, Any]:
        """The graph of the definition an execution ran (it never changes for that execution)."""
        with self.lock:
            if arn in self.graphs:
                return self.graphs[arn]
        shape = executions.definition_graph(self.backend.sfn, arn)
        with self.lock:
            self.graphs[arn] = shape
            while len(self.graphs) > 200:
                self.graphs.popitem(last=False)
        return shape

    def close(self) -> None:
        self.lister.close()
