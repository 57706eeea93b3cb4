"""Reconcile (scheduled): start the pipeline for uploads whose event never started it."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import reconcile
from pipeline.events import ScheduledRun
from pipeline.observability import logger, metrics, run_step
from pipeline.recovery_io import PipelineExecutions, UploadListing
from pipeline.settings import ReconcileSettings
from pipeline.storage import S3Store

SETTINGS = ReconcileSettings.from_env()
UPLOADS = UploadListing.create()
MANIFESTS = S3Store.create()
EXECUTIONS = PipelineExecutions.create(SETTINGS.state_machine_arn)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path="execution_id")
@event_source(data_class=ScheduledRun)
def lambda_handler(event: ScheduledRun, context: LambdaContext) -> dict[str, Any]:
    return run_step("reconcile", event, lambda: reconcile.run(SETTINGS, UPLOADS, MANIFESTS, EXECUTIONS))
