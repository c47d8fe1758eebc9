"""The rq worker imports every job's module before it forks a work horse, and every command line that starts a
worker in production or in the e2e harness uses that worker class."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from control_api.jobs import cron
from control_api.jobs.queue import JOB_NAMES, job_function
from control_api.jobs.worker import WORKER_ARGV, job_modules

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", JOB_NAMES)
def test_every_job_name_resolves_to_a_function_in_a_preloaded_module(name):
    assert callable(job_function(name))
    assert name.rsplit(".", 1)[0] in job_modules()


def test_the_jobs_rq_cron_queues_are_among_them():
    for function in (cron.run_sweep, cron.run_fleet_check):
        assert f"{function.__module__}.{function.__name__}" in JOB_NAMES


def test_the_worker_holds_the_job_modules_before_its_first_fork(redis_url):
    # A fresh interpreter that only constructs the worker (on a real Redis): the job modules must be loaded by
    # then, so each forked horse inherits them instead of importing them for every job.
    probe = (
        "import sys, redis\n"
        "from control_api.jobs.worker import PreloadedWorker, job_modules\n"
        "assert not any(m in sys.modules for m in job_modules())\n"
        f"PreloadedWorker(['nodes', 'default'], connection=redis.Redis.from_url({redis_url!r}))\n"
        "missing = [m for m in job_modules() if m not in sys.modules]\n"
        "assert not missing, missing\n"
        "assert 'ansible_runner' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, timeout=120)


def test_every_worker_command_line_uses_the_preloaded_worker():
    unit = (REPO / "roles/control_plane/templates/rayfleet-worker@.service.j2").read_text()
    assert "/bin/rq " + " ".join(WORKER_ARGV) in unit
    assert "WORKER_ARGV" in (REPO / "harness/fleet.py").read_text()
