"""pipeline.status: ids, sequencer order, and the conditional writes, on moto's DynamoDB (real condition semantics)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from pipeline import status
from pipeline.settings import StatusSettings
from pipeline.storage import StatusTable
from tests.conftest import REGION

PREFIX = "uploads/"
API_ID = "0123456789abcdef0123456789abcdef"
KEY = f"{PREFIX}{API_ID}/beach.jpg"


def test_an_api_key_maps_to_its_id_and_any_other_key_to_a_digest() -> None:
    assert status.id_for_key(PREFIX, KEY) == API_ID
    for key in (
        f"{PREFIX}holiday/beach.jpg",
        f"{PREFIX}{API_ID}",
        f"{PREFIX}{API_ID}/a/b.jpg",
        f"{PREFIX}{API_ID.upper()}/beach.jpg",
        f"elsewhere/{API_ID}/beach.jpg",
    ):
        found = status.id_for_key(PREFIX, key)
        assert found == "s3-" + hashlib.sha256(key.encode()).hexdigest()[:32]
        assert status.is_id(found)
    assert status.is_id(API_ID)
    assert not status.is_id("../etc")
    assert not status.is_id("s3-xyz")
    assert not status.is_id("")


def test_sequencers_order_after_left_padding_as_s3_documents() -> None:
    """S3: "left-pad the shorter value with zeros, and then do a lexicographical comparison"."""
    assert status.sequencer_order("0A1B2C") < status.sequencer_order("00A1B2C3")
    assert status.sequencer_order("FF") < status.sequencer_order("100")
    assert status.sequencer_order("00617F08299329D189") == status.sequencer_order("617f08299329d189")
    for unknown in (None, "", "not hex", "1" * 49):
        assert status.sequencer_order(unknown) == status.UNKNOWN_SEQUENCER
        assert status.sequencer_order("1") > status.UNKNOWN_SEQUENCER


def test_a_step_never_writes_pending() -> None:
    with pytest.raises(ValueError, match="PROCESSING or an outcome"):
        status.transition(_update(status.PENDING, "v1", "01"), PREFIX)


@pytest.fixture
def table() -> Iterator[StatusTable]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="status",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield StatusTable(client, "status", PREFIX)


def _update(state: str, version: str, sequencer: str | None, key: str = KEY, **extra: Any) -> status.Update:
    return status.Update(
        key=key, status=state, version=version, sequencer=sequencer, execution=f"arn:exec:{version}", at="t", **extra
    )


def _now(table: StatusTable) -> status.Record:
    record = table.get(API_ID)
    assert record is not None
    return record


def test_a_version_moves_forward_and_its_first_outcome_stands(table: StatusTable) -> None:
    assert table.record(_update(status.PROCESSING, "v1", "0A"))
    assert _now(table).status == status.PROCESSING
    assert table.record(_update(status.SUCCEEDED, "v1", "0A"))
    assert not table.record(_update(status.PROCESSING, "v1", "0A")), "a late PROCESSING of the same version"
    assert not table.record(_update(status.FAILED, "v1", "0A")), "a duplicate execution's failure"
    assert _now(table).status == status.SUCCEEDED


def test_a_newer_version_replaces_and_an_older_one_never_does(table: StatusTable) -> None:
    assert table.record(_update(status.PROCESSING, "v2", "0B"))
    assert not table.record(_update(status.SUCCEEDED, "v1", "0A")), "the older upload finishing late"
    assert not table.record(_update(status.FAILED, "v1", "0A"))
    assert (_now(table).status, _now(table).version) == (status.PROCESSING, "v2")
    assert table.record(_update(status.DELETED, "marker", "0C"))
    assert not table.record(_update(status.SUCCEEDED, "v2", "0B")), "processed after its source was deleted"
    assert _now(table).status == status.DELETED


def test_a_manual_execution_moves_only_its_own_version(table: StatusTable) -> None:
    assert table.record(_update(status.PROCESSING, "v1", "0A"))
    assert not table.record(_update(status.PROCESSING, "v0", None)), "another version, order unknown"
    assert table.record(_update(status.SUCCEEDED, "v1", None)), "the same version, further along"
    assert _now(table).status == status.SUCCEEDED


def test_the_api_record_waits_for_any_upload_of_its_key_and_keeps_its_creation_time(table: StatusTable) -> None:
    table.create_pending(
        status.pending(
            API_ID,
            KEY,
            created_at="2026-01-01T00:00:00Z",
            expires_at="2026-01-01T00:15:00Z",
            expires_epoch=1,
            keep_s=10,
        )
    )
    pending = _now(table)
    assert (pending.status, pending.expires_at, pending.renditions) == (status.PENDING, "2026-01-01T00:15:00Z", [])
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        table.create_pending(
            status.pending(API_ID, KEY, created_at="later", expires_at="later", expires_epoch=1, keep_s=10)
        )
    outputs = [{"key": "a/r/2048w.jpg", "width": 2048, "height": 1536, "format": "jpeg", "bytes": 5, "bucket": "b"}]
    assert table.record(_update(status.SUCCEEDED, "v1", None, renditions=outputs))
    record = _now(table)
    assert record.created_at == "2026-01-01T00:00:00Z"
    assert record.renditions == [{k: v for k, v in outputs[0].items() if k != "bucket"}]
    item = table.client.get_item(TableName="status", Key={"id": {"S": API_ID}})["Item"]
    assert "ttl" not in item, "an upload that arrived is kept"


def test_another_key_under_an_api_id_never_takes_its_record(table: StatusTable) -> None:
    table.create_pending(status.pending(API_ID, KEY, created_at="c", expires_at="e", expires_epoch=1, keep_s=10))
    assert not table.record(_update(status.PROCESSING, "v1", "0A", key=f"{PREFIX}{API_ID}/other.jpg"))
    assert _now(table).key == KEY


def test_failures_keep_their_error_and_reason(table: StatusTable) -> None:
    assert table.record(
        _update(status.FAILED, "v1", "0A", error="CorruptImage", reason="the JPEG data ends before its end marker")
    )
    record = _now(table)
    assert (record.error, record.reason) == ("CorruptImage", "the JPEG data ends before its end marker")


_STATES = st.sampled_from([status.PROCESSING, status.SUCCEEDED, status.FAILED, status.SUPERSEDED])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.tuples(st.integers(1, 4), _STATES), min_size=1, max_size=8))
def test_whatever_order_writes_arrive_in_the_newest_version_s_furthest_first_write_stands(
    table: StatusTable, writes: list[tuple[int, str]]
) -> None:
    """Executions of versions 1-4 (sequencer = version) write in any order: the record ends with the
    newest version written, at the first write of the highest rank that version got."""
    table.client.delete_item(TableName="status", Key={"id": {"S": API_ID}})
    for version, state in writes:
        table.record(_update(state, f"v{version}", f"{version:02X}"))
    newest = max(v for v, _ in writes)
    ranks = [(status.RANK[s], -i, s) for i, (v, s) in enumerate(writes) if v == newest]
    expected = max(ranks)[2]
    record = _now(table)
    assert (record.version, record.status) == (f"v{newest}", expected)


def test_status_settings_come_from_the_environment() -> None:
    found = StatusSettings.from_env({"STATUS_TABLE": "t", "UPLOAD_PREFIX": "in/"})
    assert (found.table, found.upload_prefix) == ("t", "in/")
    with pytest.raises(Exception, match="STATUS_TABLE"):
        StatusSettings.from_env({})
