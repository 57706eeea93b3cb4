"""The console's routes over plain HTTP, against moto in this process (no browser, no local cloud):
1,000 executions paged through with ListExecutions' tokens, the filter, refusals, the start form's
JSON checks, the dead-letter queue peeked without deleting anything."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws

from imgpipe.console.backend import SERVICES, Backend, ConsoleError
from imgpipe.console.server import DEFAULT_PORT, ConsoleServer

EXECUTIONS = 1_000
ABORTED = 100
ROW = re.compile(
    r'<tr data-status="([A-Z_]+)">.*?class="key">(?:<a[^>]*>)?([^<]*)<'
    r'.*?class="execution-name" href="/executions/([^"]+)"',
    re.S,
)
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
NEWER = re.compile(r'<a rel="prev" href="([^"]+)"')


@dataclass
class Served:
    url: str
    backend: Backend
    names: list[str]  # oldest first
    describes: list[str]
    dlq_url: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path.replace("&amp;", "&"), timeout=30, **kwargs)


def _client(service: str) -> Any:
    make: Any = boto3.client
    return make(service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with mock_aws():
        clients = {name: _client(name) for name in SERVICES}
        sfn = clients["stepfunctions"]
        definition = {"StartAt": "Validate", "States": {"Validate": {"Type": "Pass", "End": True}}}
        machine = sfn.create_state_machine(
            name="pipeline", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"]
        arns = [
            sfn.start_execution(
                stateMachineArn=machine, input=json.dumps({"bucket": "src", "key": f"uploads/{n:04}.jpg"})
            )["executionArn"]
            for n in range(EXECUTIONS)
        ]
        for arn in arns[:ABORTED]:
            sfn.stop_execution(executionArn=arn)
        dlq = clients["sqs"].create_queue(QueueName="dlq")["QueueUrl"]
        for n in range(2):
            clients["sqs"].send_message(QueueUrl=dlq, MessageBody=json.dumps({"detail-type": "Object Created", "n": n}))
        outputs = {
            "StateMachineArn": machine,
            "SourceBucketName": "src",
            "DestinationBucketName": "dst",
            "TopicArn": clients["sns"].create_topic(Name="topic")["TopicArn"],
            "DeadLetterQueueUrl": dlq,
        }
        backend = Backend("imgpipe", "us-east-1", outputs, local=False, clients=clients)
        describes: list[str] = []
        sfn.meta.events.register(
            "before-parameter-build.sfn.DescribeExecution", lambda params, **_: describes.append(params["executionArn"])
        )
        with ConsoleServer(backend, port=0) as console:
            yield Served(console.url, backend, [a.rsplit(":", 1)[-1] for a in arns], describes, dlq)


def rows(html: str) -> list[tuple[str, str, str]]:
    return ROW.findall(html)


def test_the_first_page_describes_only_its_own_rows_once(served: Served) -> None:
    before = len(served.describes)
    page = served.get("/executions")
    assert page.status_code == 200
    found = rows(page.text)
    assert len(found) == 25
    assert len(served.describes) - before == 25, "one DescribeExecution per row on the page, none for the rest"
    assert all(key.startswith("uploads/") and key.endswith(".jpg") for _, key, _ in found)
    again = served.get("/executions")
    assert rows(again.text) == found
    assert len(served.describes) - before == 25, "an execution's input never changes: its key is remembered"


def test_the_pages_cover_every_execution_once_newest_first(served: Served) -> None:
    seen: list[str] = []
    path: str | None = "/executions?size=100"
    pages: list[str] = []
    while path is not None:
        page = served.get(path)
        assert page.status_code == 200, page.text
        pages.append(path)
        seen += [name for _, _, name in rows(page.text)]
        found = NEXT.search(page.text)
        path = found.group(1) if found else None
    assert len(pages) == EXECUTIONS // 100
    assert sorted(seen) == sorted(served.names), "every execution once"
    third = served.get(pages[2])
    newer = NEWER.search(third.text)
    assert newer is not None
    assert rows(served.get(newer.group(1)).text) == rows(served.get(pages[1]).text), "Newer goes back one page"


def test_the_status_filter(served: Served) -> None:
    page = served.get("/executions?status=ABORTED&size=100")
    found = rows(page.text)
    assert len(found) == ABORTED
    assert {status for status, _, _ in found} == {"ABORTED"}
    assert {name for _, _, name in found} == set(served.names[:ABORTED])
    assert NEXT.search(page.text) is None
    assert 'value="ABORTED" selected' in page.text
    fragment = served.get("/executions?status=ABORTED&size=10", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<section id="executions-table"'), "htmx gets the table alone"
    assert "<html" not in fragment.text


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("status=DONE", "unknown status 'DONE'"),
        ("size=7", "page size 7"),
        ("size=many", "is not a number"),
        ("token=not-a-token", "token is not valid"),
    ],
)
def test_parameters_it_cannot_use_are_a_400_that_says_why(served: Served, query: str, says: str) -> None:
    page = served.get("/executions?" + query)
    assert page.status_code == 400
    assert says in unescape(page.text)


def test_an_unknown_execution_is_a_404(served: Served) -> None:
    for name in ("0" * 36, "no such name", "a:b"):
        page = served.get(f"/executions/{name}")
        assert page.status_code == 404
        assert "no execution" in page.text or "Not Found" in page.text
    assert served.get(f"/executions/{'0' * 36}/live").status_code == 404
    known = served.get(f"/executions/{served.names[-1]}")
    assert known.status_code == 200
    assert "uploads/0999.jpg" in known.text
    assert json.loads(re.search(r'id="graph-data">(.*?)</script>', known.text, re.S).group(1))["nodes"]  # type: ignore[union-attr]


def _csrf(served: Served) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', served.get("/start").text)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"bucket": "src", "key": ', "not valid JSON: Expecting value at line 1, column 26"),
        ("{'bucket': 'src'}", "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2"),
        ("   ", "The input is empty"),
        ('"' + "x" * 300_000 + '"', "Step Functions takes at most 262,144"),
    ],
)
def test_start_refuses_what_is_not_a_json_input_with_a_clear_error(served: Served, text: str, says: str) -> None:
    answer = requests.post(served.url + "/start", data={"csrf": _csrf(served), "input": text}, timeout=30)
    assert answer.status_code == 400
    assert says in unescape(answer.text)
    assert 'aria-invalid="true"' in answer.text
    assert 'role="alert"' in answer.text


def test_start_needs_the_form_token_and_redirects_to_the_execution(served: Served) -> None:
    refused = requests.post(served.url + "/start", data={"input": "{}"}, timeout=30)
    assert refused.status_code == 400
    assert "out of date" in refused.text
    started = requests.post(
        served.url + "/start",
        data={"csrf": _csrf(served), "input": '{"bucket": "src", "key": "uploads/by-hand.jpg"}'},
        allow_redirects=False,
        timeout=30,
    )
    assert started.status_code == 303
    assert started.headers["Location"].startswith("/executions/")
    page = served.get(started.headers["Location"])
    assert page.status_code == 200
    assert "uploads/by-hand.jpg" in page.text


def test_the_start_form_offers_the_events_inputs_with_the_stacks_bucket(served: Served) -> None:
    page = served.get("/start?input=failure-missing-object.json")
    assert '<option value="failure-missing-object.json" selected>' in page.text
    assert "s3-object-created.json" in page.text
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", page.text, re.S)
    assert textarea is not None
    assert '"bucket": "src"' in unescape(textarea.group(1))
    assert "your-source-bucket" not in page.text.split("<textarea", 1)[1].split("</textarea>", 1)[0]


def test_messages_say_how_to_subscribe_and_peek_at_the_dead_letter_queue(served: Served) -> None:
    sqs = served.backend.sqs
    for _ in range(2):
        page = served.get("/messages")
        assert page.status_code == 200
        assert "--subscribe" in page.text, "a deployed stack is not subscribed unless asked"
        assert page.text.count('class="card dlq-message"') == 2
        assert "Object Created" in page.text
    count = sqs.get_queue_attributes(QueueUrl=served.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert count["Attributes"]["ApproximateNumberOfMessages"] == "2", "peeking deletes nothing"
    assert served.get("/messages/dead-letter").text.count('class="card dlq-message"') == 2
    assert served.get("/messages?kind=everything").status_code == 400


def test_uploads_without_an_api_say_so(served: Served) -> None:
    assert "no upload API" in served.get("/uploads").text
    assert served.get("/uploads/abc").status_code == 404


def test_security_headers_and_the_host_check(served: Served) -> None:
    page = served.get("/executions")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    other = served.get("/executions", headers={"Host": "attacker.example"})
    assert other.status_code == 400, "a page elsewhere cannot reach the console by rebinding a name to loopback"
    assert served.get("/healthz").json() == {"ok": True, "stack": "imgpipe", "local": False}


def test_the_default_port_falls_back_to_a_free_one_and_an_asked_port_must_be_free(served: Served) -> None:
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", DEFAULT_PORT))
        holder.listen()
    except OSError:
        pass  # something else already listens there: just as good
    try:
        with ConsoleServer(served.backend) as console:
            assert not console.url.endswith(f":{DEFAULT_PORT}")
            assert requests.get(console.url + "/healthz", timeout=30).json()["ok"] is True
        with pytest.raises(ConsoleError, match=f"cannot listen on 127.0.0.1:{DEFAULT_PORT}"):
            ConsoleServer(served.backend, port=DEFAULT_PORT).start()
    finally:
        holder.close()
