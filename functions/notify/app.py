"""Publish the success message, once per source revision, with attributes subscribers can filter on."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import steps
from pipeline.events import NotifyEvent
from pipeline.idempotency import once_per_revision
from pipeline.observability import logger, metrics, run_step
from pipeline.settings import NotifySettings
from pipeline.storage import Topic

SETTINGS = NotifySettings.from_env()
TOPIC = Topic.create(SETTINGS.topic_arn)
ONCE = once_per_revision(SETTINGS, key_prefix="notify")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution")
@ONCE
@event_source(data_class=NotifyEvent)
def lambda_handler(event: NotifyEvent, context: LambdaContext) -> dict[str, Any]:
    return run_step("notify", event, lambda: steps.notify(event, SETTINGS, TOPIC))
