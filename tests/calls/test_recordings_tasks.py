"""The hourly beat job that removes the temp files a killed worker left behind in RECORDINGS_DIR/tmp."""

from __future__ import annotations

import os
import time

TASK = "calls.recordings.tasks.remove_stale_temp_files"


def _beat_entry(settings) -> dict:
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == TASK]
    return entry


def test_a_worker_loads_the_housekeeping_task_the_beat_schedule_names(settings):
    from telephony_app.celery import app

    entry = _beat_entry(settings)
    # What a worker imports at start-up besides autodiscovery (which only finds <app>.tasks modules).
    loaded = {module.__name__ for module in app.loader.import_default_modules()}
    assert "calls.recordings.tasks" in loaded
    assert entry["task"] in app.tasks
    assert entry["schedule"] <= 24 * 3600


def test_the_beat_job_removes_a_stale_temp_file_and_keeps_a_fresh_one(settings, tmp_path):
    from telephony_app.celery import app

    settings.RECORDINGS_DIR = tmp_path
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stale, fresh = tmp / "dl-killed.part", tmp / "cv-running.mp3"
    for path in (stale, fresh):
        path.write_bytes(b"audio")
    seven_hours_ago = time.time() - 7 * 3600
    os.utime(stale, (seven_hours_ago, seven_hours_ago))

    app.loader.import_default_modules()
    result = app.tasks[_beat_entry(settings)["task"]].apply()

    assert result.get() == 1
    assert not stale.exists()
    assert fresh.read_bytes() == b"audio"
