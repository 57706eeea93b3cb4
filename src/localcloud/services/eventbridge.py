"""EventBridge: events on the default bus reach their rules' targets, state machines included.

moto delivers to SQS, SNS, CloudWatch Logs and Lambda targets itself; a state machine target is
delivered here (``Delivery``), as EventBridge does it: on a thread of its own, retried with backoff
under the target's RetryPolicy, then sent to its DeadLetterConfig queue. Patch:
``events_state_machine_target``.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from moto.events.models import Rule

from localcloud.patching import Patch, Slot, original
from localcloud.services.stepfunctions import executions


class Deliverer(Protocol):
    """What the rule patch hands state machine targets to."""

    def deliver(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Deliver an event to a rule target that moto cannot reach (a state machine)."""


DELIVERY: Slot[Deliverer] = Slot("EventBridge's state machine delivery")


def put_on_default_bus(account_id: str, region: str, event: dict[str, Any]) -> None:
    """Send an event to the enabled rules of the account's default bus (where AWS services send theirs)."""
    from moto.events.models import events_backends

    bus = events_backends[account_id][region].event_buses.get("default")
    if bus is None:
        return
    for rule in list(bus.rules.values()):
        if rule.state == "ENABLED":
            rule.send_to_targets(cast(Any, event), transform_input=False)


# -- events_state_machine_target -------------------------------------------------------------------


def _rule_send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
    """moto 5.2.5 raises NotImplementedError for a state machine target, which also aborts the
    rule's other targets. State machine targets go to the attached delivery (retry policy, DLQ)."""
    if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
        return
    ours = [t for t in self.targets if t["Arn"].split(":")[2] == "states"]
    others = [t for t in self.targets if t not in ours]
    for target in ours:
        DELIVERY.get().deliver(self, target, copy.deepcopy(original_event))
    if others:
        proxy = copy.copy(self)
        proxy.targets = others
        original(Rule, "send_to_targets")(proxy, _moto_time(original_event), transform_input)


def _moto_time(event: Any) -> Any:
    """moto's own targets (SQS, CloudWatch Logs) take ``time`` in epoch seconds and format it themselves."""
    if not isinstance(event.get("time"), str):
        return event
    return {**event, "time": datetime.fromisoformat(event["time"]).timestamp()}


PATCHES = (Patch(("events_state_machine_target",), Rule, "send_to_targets", _rule_send_to_targets),)


def reset() -> None:
    DELIVERY.attach(None)


# -- delivery ----------------------------------------------------------------------------------------


@dataclass
class DeliveryFailure:
    rule: str
    target: str
    error: str
    attempts: int
    dead_lettered: bool


@dataclass(frozen=True)
class DeliveryOptions:
    """``retry_base_s``: the first retry's delay (doubling, at most 60 s); ``time_scale``: the cloud's
    clock against real time; ``max_running``: executions started by events at once (0: no limit)."""

    retry_base_s: float = 1.0
    time_scale: float = 1.0
    max_running: int = 0


class Delivery:
    """Events for state machine targets, each delivered on a thread of the pool, as EventBridge does it.

    Once ``stopping`` is set, events are dropped: none is delivered and no execution started after it.
    """

    def __init__(
        self,
        options: DeliveryOptions,
        *,
        client: Callable[[str], Any],
        on_failure: Callable[[DeliveryFailure], None],
        stopping: threading.Event,
    ) -> None:
        self._options = options
        self._client = client
        self._on_failure = on_failure
        self._stopping = stopping
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventbridge")

    def deliver(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Queue the event for the target."""
        if self._stopping.is_set():
            return
        try:
            self._pool.submit(self._deliver, rule, target, event)
        except RuntimeError:  # the pool shut down since the check: the cloud is stopping
            if not self._stopping.is_set():
                raise

    def close(self) -> None:
        """Wait for the deliveries under way; cancel the queued ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _deliver(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Start the target state machine, honouring the target's RetryPolicy and DeadLetterConfig."""
        policy = target.get("RetryPolicy") or {}
        max_retries = int(policy.get("MaximumRetryAttempts", 185))
        max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
        scale = self._options.time_scale
        started = time.monotonic()
        payload = json.dumps(target_input(target, event))
        attempts = 0
        while True:
            attempts += 1
            try:
                self._start(target["Arn"], payload)
                return
            except Exception as exc:  # noqa: BLE001 - every failure goes to retry, then to the DLQ
                error = f"{type(exc).__name__}: {exc}"
            delay = min(self._options.retry_base_s * 2 ** (attempts - 1), 60.0)
            # The event's age is counted in the cloud's (scaled) time, like its sleeps.
            if attempts > max_retries or (time.monotonic() - started) / scale + delay > max_age:
                break
            if self._stopping.wait(delay * scale):
                return  # dropped: the cloud stops
        self._dead_letter(rule, target, payload, error, attempts)

    def _start(self, arn: str, payload: str) -> None:
        """One attempt: wait for capacity, then start the execution (EventBridge names it with a UUID)."""
        self._wait_for_capacity(arn)
        if not self._stopping.is_set():
            executions.backend_of(arn).start_execution(arn, str(uuid.uuid4()), execution_input=payload)

    def _wait_for_capacity(self, arn: str) -> None:
        """Back-pressure: hold a delivery while the machine's workers are saturated.

        On AWS a burst of uploads meets a thousand concurrent Lambda environments; here it meets a
        worker pool per function sized to the cores. Starting every execution at once would queue
        their tasks behind each other until their TimeoutSeconds (measured from the task's start)
        expire: an artefact of the machine, not of the workflow. So deliveries wait while more than
        ``max_running`` executions run; the delay shows up as event-to-start latency instead.
        """
        limit = self._options.max_running
        while limit and not self._stopping.is_set():
            running = executions.running_count(arn)
            if running is None or running < limit:  # None: no such machine; start_execution says so
                return
            time.sleep(0.02)

    def _dead_letter(self, rule: Any, target: dict[str, Any], payload: str, error: str, attempts: int) -> None:
        dlq_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
        self._on_failure(DeliveryFailure(rule.arn, target["Arn"], error, attempts, dead_lettered=bool(dlq_arn)))
        if not dlq_arn:
            print(f"EventBridge: event for {target['Arn']} dropped after {attempts} attempts: {error}", file=sys.stderr)
            return
        sqs = self._client("sqs")
        queue_url = sqs.get_queue_url(QueueName=dlq_arn.split(":")[-1])["QueueUrl"]
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=payload,
            MessageAttributes={
                "RULE_ARN": {"DataType": "String", "StringValue": rule.arn},
                "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
                "ERROR_CODE": {"DataType": "String", "StringValue": error.split(":", 1)[0]},
                "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:1000] or "unknown"},
            },
        )


def target_input(target: Mapping[str, Any], event: dict[str, Any]) -> Any:
    """What EventBridge sends a target: Input, InputPath or InputTransformer, else the event."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        value: Any = event
        for part in str(target["InputPath"]).removeprefix("$").strip(".").split("."):
            if part:
                value = value[part]
        return value
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        return EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=cast(Any, event),
        )
    return event
