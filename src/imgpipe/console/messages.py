"""What a subscriber of the pipeline's topic receives, and what waits in the dead-letter queue.

``Inbox`` is an SQS queue of the console's own, subscribed to the topic while the console runs (as
``localcloud.runner.Subscriber`` does), drained by a thread into a bounded list; the queue and the
subscription are removed when the console stops. ``peek`` reads the dead-letter queue without
deleting anything (VisibilityTimeout 0: each message stays visible; its receive count goes up).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

KEPT: Final = 500
KINDS: Final = {"success": "SUCCEEDED", "failure": "FAILED", "deleted": "DELETED"}
log = logging.getLogger(__name__)


def _queue_policy(queue_arn: str, topic_arn: str) -> str:
    """Lets the topic (and only it) send to the queue, as SNS on AWS requires."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


def parse(body: str, received: datetime) -> dict[str, Any]:
    """An SNS envelope as the page shows it: status, subject, source key, execution, the message."""
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = {"Message": body}
    message: Any = envelope.get("Message") if isinstance(envelope, dict) else body
    with contextlib.suppress(TypeError, ValueError):
        message = json.loads(message)
    status = message.get("status") if isinstance(message, dict) else None
    source = message.get("source") if isinstance(message, dict) else None
    execution = message.get("execution") if isinstance(message, dict) else None
    return {
        "id": envelope.get("MessageId") if isinstance(envelope, dict) else None,
        "received": received,
        "sent": envelope.get("Timestamp") if isinstance(envelope, dict) else None,
        "subject": envelope.get("Subject") if isinstance(envelope, dict) else None,
        "status": status if isinstance(status, str) else "?",
        "key": source.get("key") if isinstance(source, dict) else None,
        "executionName": execution.rsplit(":", 1)[-1] if isinstance(execution, str) else None,
        "text": json.dumps(message, indent=2, ensure_ascii=False) if not isinstance(message, str) else message,
    }


class Inbox:
    def __init__(self, sqs: Any, sns: Any, topic_arn: str, name: str | None = None) -> None:
        self.sqs, self.sns, self.topic_arn = sqs, sns, topic_arn
        self.name = name or f"imgpipe-console-{secrets.token_hex(4)}"
        self.queue_url: str | None = None
        self.subscription_arn: str | None = None
        self._messages: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> Inbox:
        self.queue_url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        arn = attributes["Attributes"]["QueueArn"]
        self.sqs.set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"Policy": _queue_policy(arn, self.topic_arn)}
        )
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        self._thread = threading.Thread(target=self._run, name="console-inbox", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except (BotoCoreError, ClientError) as exc:
                self.error = str(exc)
                self._stop.wait(2.0)
                continue
            for message in got.get("Messages", []):
                with self._lock:
                    self._messages.appendleft(parse(message["Body"], datetime.now(UTC)))
                with contextlib.suppress(BotoCoreError, ClientError):
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def messages(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``kind`` is success, failure or deleted."""
        with self._lock:
            found = list(self._messages)
        wanted = KINDS.get(kind or "")
        return [m for m in found if wanted is None or m["status"] == wanted]

    def stop(self) -> None:
        """Stop draining; remove the subscription and the queue (best effort: the console is stopping)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.subscription_arn:
            with contextlib.suppress(BotoCoreError, ClientError):
                self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
        if self.queue_url:
            with contextlib.suppress(BotoCoreError, ClientError):
                self.sqs.delete_queue(QueueUrl=self.queue_url)


def peek(sqs: Any, queue_url: str, most: int = 10) -> dict[str, Any]:
    """Up to ``most`` messages of the queue (SQS returns a sample of them), none deleted, and its count."""
    count = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    got = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=min(most, 10),
        VisibilityTimeout=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    shown = []
    for message in got.get("Messages", []):
        try:
            text = json.dumps(json.loads(message["Body"]), indent=2, ensure_ascii=False)
        except ValueError:
            text = message["Body"]
        attributes = {k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()}
        sent = message.get("Attributes", {}).get("SentTimestamp")
        shown.append(
            {
                "id": message["MessageId"],
                "sent": datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
                "receives": message.get("Attributes", {}).get("ApproximateReceiveCount"),
                "attributes": attributes,
                "text": text,
            }
        )
    return {
        "count": int(count.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(count.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "messages": shown,
    }
