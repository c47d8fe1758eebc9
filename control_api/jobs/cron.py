"""The `rq cron` configuration: `rq cron --url "$REDIS_URL" control_api.jobs.cron` (run exactly one).

Enqueues control_api.jobs.sweep.run_sweep on queue "default" every 5 minutes; a worker started
`rq worker --with-scheduler nodes default` runs it. run_sweep takes a Redis lock, so a second cron
process by mistake costs one no-op job, not a double sweep.
"""

from rq import cron

from .sweep import run_sweep

SWEEP_EVERY = "*/5 * * * *"

cron.register(run_sweep, "default", cron=SWEEP_EVERY, result_ttl=0, failure_ttl=3600, job_timeout=240)
