"""The `rq cron` configuration: `rq cron --url "$REDIS_URL" control_api.jobs.cron` (run exactly one).

Enqueues control_api.jobs.sweep.run_sweep on queue "default" every 5 minutes and run_fleet_check
every minute; a worker started
`rq worker --with-scheduler nodes default` runs it. run_sweep takes a Redis lock, so a second cron
process by mistake costs one no-op job, not a double sweep.
"""

from rq import cron

from .sweep import run_fleet_check, run_sweep

SWEEP_EVERY = "*/5 * * * *"
FLEET_CHECK_EVERY = "* * * * *"  # a dark node is noticed within a minute of HEALTH_DARK_AFTER_SECONDS

cron.register(run_sweep, "default", cron=SWEEP_EVERY, result_ttl=0, failure_ttl=3600, job_timeout=240)
cron.register(run_fleet_check, "default", cron=FLEET_CHECK_EVERY, result_ttl=0, failure_ttl=3600, job_timeout=55)
