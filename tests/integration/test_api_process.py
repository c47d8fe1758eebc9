"""Only jobs run playbooks: an API process on PostgreSQL + Redis serves a sale and a provisioning
request (both queue node jobs in the real Redis) without ever loading Ansible or ansible-runner.
The worker imports the job functions by the names the API queued."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq import Queue

from control_api.jobs.queue import NODES_QUEUE, PROVISION_JOB, SYNC_JOB, job_function

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter, so that nothing pytest imported counts.
API_PROCESS = r"""
import json, sys
from control_api import create_app
from tests.conftest import create_admin, create_node, make_settings

app = create_app(make_settings(sys.argv[1], sys.argv[2]))
client = app.test_client()
admin = create_admin(app, client)
node = create_node(client, admin, "layers-node")
plan = client.post("/api/v1/plans", headers=admin.headers, json={
    "name": "layers", "location_tag": "abroad", "duration_days": 30, "max_devices": 1,
    "data_limit_mb": 1000, "price_cents": 100}).json
user = client.put("/api/v1/users/telegram/4242", headers=admin.headers, json={"username": "layers"}).json
config = client.post(f"/api/v1/users/{user['id']}/configs", headers=admin.headers,
                     json={"plan_id": plan["id"], "node_id": node.principal_id})
provision = client.post(f"/api/v1/nodes/{node.principal_id}/provision", headers=admin.headers)
print(json.dumps({
    "statuses": [config.status_code, provision.status_code],
    "node_id": node.principal_id,
    "ansible_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("ansible", "ansible_runner")),
    "job_modules": sorted(m for m in sys.modules if m in ("control_api.jobs.tasks", "control_api.jobs.sync",
                                                         "control_api.runners", "control_api.runners.ansible")),
}))
"""


def test_an_api_process_queues_node_jobs_without_loading_ansible(settings):
    done = subprocess.run(
        [sys.executable, "-c", API_PROCESS, settings.database_url, settings.redis_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [201, 202]
    assert report["ansible_modules"] == []
    assert report["job_modules"] == []

    queue = Queue(NODES_QUEUE, connection=redis.Redis.from_url(settings.redis_url))
    jobs = {job.id: job.func_name for job in queue.get_jobs()}
    node_id = report["node_id"]
    assert jobs == {f"sync-node-{node_id}": SYNC_JOB, f"provision-node-{node_id}": PROVISION_JOB}
    # What a worker does with those names: import the job functions (and, with them, the runner).
    assert job_function(SYNC_JOB).__name__ == "sync_node_job"
    assert job_function(PROVISION_JOB).__name__ == "provision_node_job"
