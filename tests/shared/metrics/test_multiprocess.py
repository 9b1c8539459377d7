"""Multiprocess mode: what separate processes record is merged by the host's registry."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shipyard.shared.metrics.exposition import HostMetricsServer
from shipyard.shared.metrics.multiprocess import ENV_VARIABLE, host_registry, wipe_metrics_dir

# Each test records its figures in new Python processes: seconds each.
pytestmark = pytest.mark.slow

# A worker process in miniature: the entry point's set-up first, then the instruments.
_WORKER = """
import sys
from pathlib import Path
from shipyard.shared.metrics.multiprocess import use_metrics_dir
use_metrics_dir(Path(sys.argv[1]))
from shipyard.shared.metrics import instruments
instruments.record_stage(stage="build", result="succeeded", seconds=0.3)
instruments.record_pipeline_finished(result="failed", cause="deploy", trigger="api")
instruments.record_build(cache_hit=True)
"""


def _record_in_a_process(metrics_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_VARIABLE}
    subprocess.run(
        [sys.executable, "-c", _WORKER, str(metrics_dir)], env=env, check=True, timeout=60
    )


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_two_processes_counts_are_summed(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    _record_in_a_process(metrics_dir)
    _record_in_a_process(metrics_dir)

    from prometheus_client import generate_latest

    values = _values(generate_latest(host_registry(metrics_dir)).decode())

    stage = (("result", "succeeded"), ("stage", "build"))
    assert values[("shipyard_stage_duration_seconds_count", stage)] == 2
    assert values[("shipyard_stage_duration_seconds_sum", stage)] == 0.6
    assert values[("shipyard_stage_duration_seconds_bucket", (("le", "0.25"), *stage))] == 0
    assert values[("shipyard_stage_duration_seconds_bucket", (("le", "0.5"), *stage))] == 2
    finished = (("cause", "deploy"), ("result", "failed"), ("trigger", "api"))
    assert values[("shipyard_pipelines_finished_total", finished)] == 2
    assert values[("shipyard_build_cache_lookups_total", (("result", "hit"),))] == 2


def test_the_folders_of_hosts_sharing_a_data_dir_merge_into_one_family(tmp_path: Path) -> None:
    # Two containers on one volume: the same pid may write in each, hence a folder per host.
    root = tmp_path / "metrics"
    _record_in_a_process(root / "host-a")
    _record_in_a_process(root / "host-b")

    from prometheus_client import generate_latest

    text = generate_latest(host_registry(root)).decode()

    assert text.count("# TYPE shipyard_build_cache_lookups_total counter") == 1
    assert _values(text)[("shipyard_build_cache_lookups_total", (("result", "hit"),))] == 2
    only_a = generate_latest(host_registry(root / "host-a")).decode()
    assert _values(only_a)[("shipyard_build_cache_lookups_total", (("result", "hit"),))] == 1


def test_wiping_forgets_the_processes_of_a_previous_run(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    _record_in_a_process(metrics_dir)
    assert list(metrics_dir.glob("*.db"))

    _record_in_a_process(metrics_dir / "a-host")

    wipe_metrics_dir(metrics_dir)

    from prometheus_client import generate_latest

    assert generate_latest(host_registry(metrics_dir)) == b""
    wipe_metrics_dir(tmp_path / "never-made")  # nothing there: nothing to do


def test_a_worker_host_serves_its_metrics_on_a_port_of_its_own(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    _record_in_a_process(metrics_dir)
    server = HostMetricsServer(host="127.0.0.1", port=0, metrics_dir=metrics_dir)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        server.stop()

    values = _values(text)
    assert values[("shipyard_build_cache_lookups_total", (("result", "hit"),))] == 1
