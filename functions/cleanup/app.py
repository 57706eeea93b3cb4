"""Failure branch: remove what a failed execution wrote (staging objects, incomplete renditions)."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import steps
from pipeline.events import CleanupEvent
from pipeline.observability import logger, metrics, run_step
from pipeline.settings import StatusSettings, StoreSettings
from pipeline.storage import S3Store, StatusTable

SETTINGS = StoreSettings.from_env()
S3 = S3Store.create()
STATUS = StatusTable.create(StatusSettings.from_env())


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution")
@event_source(data_class=CleanupEvent)
def lambda_handler(event: CleanupEvent, context: LambdaContext) -> dict[str, Any]:
    return run_step("cleanup", event, lambda: steps.cleanup(event, SETTINGS, S3, STATUS))
