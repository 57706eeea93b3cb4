"""One success notification per content: Powertools Idempotency keyed on bucket, key and ETag.

EventBridge delivers at least once and Express workflows run at least once, so the same upload
can run twice. Store is idempotent by construction (same keys, unchanged manifest); Notify is made
idempotent here, so a duplicate execution replays the first notification's result instead of
publishing again. A duplicate that arrives while the first is still notifying gets
IdempotencyAlreadyInProgressError, which the state machine retries.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from pipeline.settings import NotifySettings
from pipeline.storage import client

#: The content a notification is about: the same object key with the same bytes.
KEY_JMESPATH = "[source.bucket, source.key, source.etag]"


def once_per_content(settings: NotifySettings) -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    # The client comes from the function's session (Powertools would open a second one), with
    # the configuration Powertools gives its own: botocore's defaults.
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client("dynamodb", None))
    config = IdempotencyConfig(
        event_key_jmespath=KEY_JMESPATH,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_seconds,
    )
    return persistence, config
