"""Validate: read any input, pin the source version, check its header; decide what the execution does."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import steps
from pipeline.events import ValidateEvent
from pipeline.observability import logger, metrics, run_step
from pipeline.settings import Limits, Source, StatusSettings
from pipeline.storage import S3Store, StatusTable

SOURCE = Source.from_env()
LIMITS = Limits.from_env()
S3 = S3Store.create()
STATUS = StatusTable.create(StatusSettings.from_env())


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution")
@event_source(data_class=ValidateEvent)
def lambda_handler(event: ValidateEvent, context: LambdaContext) -> dict[str, Any]:
    return run_step("validate", event, lambda: steps.validate(event, SOURCE, LIMITS, S3, STATUS))
