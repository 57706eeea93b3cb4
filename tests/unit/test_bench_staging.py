"""``imgpipe bench staging`` on a small real image: every candidate round-trips exactly, and the verdicts
follow from the figures against the targets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from imgpipe_bench import staging
from imgpipe_bench.photos import photo


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    photo((1200, 800), seed=3).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_every_intermediate_comes_back_identical_and_is_judged_by_the_targets(jpeg: bytes) -> None:
    figures = staging.measure_source("small", jpeg, repeats=1)
    rows = figures["intermediates"]
    assert [row["intermediate"] for row in rows] == [c.name for c in staging.candidates()]
    assert figures["final_bytes"] > 0
    assert figures["steps_cpu_ms"] > 0
    for row in rows:
        assert row["lossless"], row["intermediate"]
        assert row["staged_vs_final"] == pytest.approx(row["staged_bytes"] / figures["final_bytes"])
        assert row["transfer_ms"] == pytest.approx(2 * row["staged_bytes"] / (staging.S3_MB_PER_S * 1e6) * 1000)
        expected = row["staged_vs_final"] <= staging.BYTES_TARGET and row["extra_cpu_vs_steps"] <= staging.CPU_TARGET
        assert row["met"] == expected
    uncompressed = rows[0]
    assert uncompressed["extra_cpu_vs_steps"] == 0
    # 1200, 1024 and 320 px renditions of a 3:2 image, three bytes a pixel, plus the TIFF headers.
    pixels = sum(w * round(w * 800 / 1200) for w in (1200, 1024, 320))
    assert 3 * pixels <= uncompressed["staged_bytes"] < 3 * pixels + 3 * 4096
    assert min(row["staged_bytes"] for row in rows[1:]) < uncompressed["staged_bytes"], "compression saves bytes"


def test_the_command_prints_json_for_a_directory_of_photos(
    jpeg: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from imgpipe import cli

    (tmp_path / "small.jpg").write_bytes(jpeg)
    assert cli.main(["bench", "staging", "--images", str(tmp_path), "--repeats", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert [s["source"] for s in figures["sources"]] == ["small"]
    assert figures["targets"] == {"staged_vs_final": staging.BYTES_TARGET, "extra_cpu_vs_steps": staging.CPU_TARGET}
    with Image.open(tmp_path / "small.jpg") as img:
        assert img.size == (1200, 800)
