"""Watermark the renditions and encode each output once, in its final format."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import steps
from pipeline.events import WatermarkEvent
from pipeline.observability import logger, metrics, run_step
from pipeline.settings import EncodeSettings, Staging, WatermarkSettings
from pipeline.storage import S3Store

MARKS = WatermarkSettings.from_env()
ENCODE = EncodeSettings.from_env()
STAGING = Staging.from_env()
S3 = S3Store.create()


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution")
@event_source(data_class=WatermarkEvent)
def lambda_handler(event: WatermarkEvent, context: LambdaContext) -> dict[str, Any]:
    return run_step("watermark", event, lambda: steps.watermark_and_encode(event, MARKS, ENCODE, STAGING, S3))
