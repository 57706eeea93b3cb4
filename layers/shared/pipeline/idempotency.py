"""One message per source revision: Powertools Idempotency keyed on bucket, key and revision.

EventBridge delivers at least once and Express workflows run at least once, so the same event can
start two executions. Store is idempotent by construction (the same revision's keys, a manifest
already naming it); Notify and Remove are made idempotent here, so a duplicate execution replays
the first message's result instead of publishing again. The key is the revision (the S3 VersionId,
or for a deletion its delete marker), not the content: uploading A, then B, then A again is three
revisions and three messages. A duplicate that arrives while the first is still publishing gets
IdempotencyAlreadyInProgressError, which the state machine retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent

from pipeline.settings import NotifySettings
from pipeline.storage import client

#: The revision a message is about: one version of one object key.
KEY_JMESPATH = "[source.bucket, source.key, source.revision]"


def once_per_revision(settings: NotifySettings, key_prefix: str) -> Callable[..., Any]:
    """Powertools' ``idempotent`` decorator, configured for one message per source revision."""
    # The client comes from the function's session (Powertools would open a second one), with
    # the configuration Powertools gives its own: botocore's defaults.
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client("dynamodb", None))
    config = IdempotencyConfig(
        event_key_jmespath=KEY_JMESPATH,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_seconds,
    )
    decorator: Callable[..., Any] = idempotent(persistence_store=persistence, config=config, key_prefix=key_prefix)
    return decorator
