"""A source was deleted: remove its renditions and manifest by exact key, then publish a DELETED message."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.idempotency import idempotent
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import steps
from pipeline.events import RemoveEvent
from pipeline.idempotency import once_per_revision
from pipeline.observability import logger, metrics, run_step
from pipeline.settings import NotifySettings, StoreSettings
from pipeline.storage import S3Store, Topic

SETTINGS = StoreSettings.from_env()
NOTIFY = NotifySettings.from_env()
S3 = S3Store.create()
TOPIC = Topic.create(NOTIFY.topic_arn)
PERSISTENCE, ONCE = once_per_revision(NOTIFY.idempotency_table, NOTIFY.idempotency_seconds)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution")
@idempotent(persistence_store=PERSISTENCE, config=ONCE, key_prefix="remove")
@event_source(data_class=RemoveEvent)
def lambda_handler(event: RemoveEvent, context: LambdaContext) -> dict[str, Any]:
    return run_step("remove", event, lambda: steps.remove(event, SETTINGS, S3, TOPIC))
