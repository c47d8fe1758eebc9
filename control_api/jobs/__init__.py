"""Background jobs (RQ 3): node sync/provision jobs, the dispatcher and the reconciliation sweep.

Only jobs run playbooks: sync.py and tasks.py import the runner (ansible-runner); the API reaches
them through queue.py by job name. See control_api/jobs/README.md for the worker and cron commands
and the node vars files.
"""

from .queue import InProcessJobQueue, JobQueue, RedisJobQueue, provision_job_id, sync_job_id

__all__ = ["InProcessJobQueue", "JobQueue", "RedisJobQueue", "provision_job_id", "sync_job_id"]
