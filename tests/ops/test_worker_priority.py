"""A Celery worker lowers its own CPU priority at start (CELERY_WORKER_NICE), pool processes included, so
that the PBX API on the same machine is served first while the workers drain a burst."""

from __future__ import annotations

import os

import pytest
from conftest import child_env


def _nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[16])


@pytest.mark.e2e
def test_a_worker_and_its_pool_run_at_the_configured_lower_priority(transactional_db, tmp_path):
    from benchmarks import harness

    ours = os.getpriority(os.PRIO_PROCESS, 0)
    worker = harness.start_celery_worker(tmp_path / "worker.log", child_env(CELERY_WORKER_NICE="7"),
                                         name="nice@%h", concurrency=2)
    try:
        pool = harness.child_pids(worker.pid)
        assert pool
        assert {_nice(pid) for pid in [worker.pid, *pool]} == {min(19, ours + 7)}
    finally:
        harness.stop_process_group(worker)
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the web side (here, the test) keeps its priority
