"""A source was deleted: remove its renditions and manifest by exact key, then publish a DELETED message."""

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import steps
from pipeline.events import RemoveEvent
from pipeline.idempotency import once_per_revision
from pipeline.observability import logger, metrics, run_step
from pipeline.settings import RemoveSettings, StatusSettings
from pipeline.storage import S3Store, StatusTable, Topic

SETTINGS = RemoveSettings.from_env()
S3 = S3Store.create()
STATUS = StatusTable.create(StatusSettings.from_env())
TOPIC = Topic.create(SETTINGS.notify.topic_arn)
ONCE = once_per_revision(SETTINGS.notify, key_prefix="remove")


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution")
@ONCE
@event_source(data_class=RemoveEvent)
def lambda_handler(event: RemoveEvent, context: LambdaContext) -> dict[str, object]:
    return run_step("remove", event, lambda: steps.remove(event, SETTINGS.store, S3, TOPIC, STATUS))
