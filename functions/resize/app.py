"""Resize: decode once, orient, normalise colours, chain renditions from the largest."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import steps
from pipeline.events import ResizeEvent
from pipeline.observability import logger, metrics, run_step
from pipeline.settings import RenditionSettings
from pipeline.storage import S3Store

SETTINGS = RenditionSettings.from_env()
S3 = S3Store.create()


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution")
@event_source(data_class=ResizeEvent)
def lambda_handler(event: ResizeEvent, context: LambdaContext) -> dict[str, Any]:
    return run_step("resize", event, lambda: steps.resize(event, SETTINGS, S3))
