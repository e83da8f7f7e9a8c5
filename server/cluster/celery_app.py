"""The Celery application both sides share: the web tier sends ``nnplay.train`` tasks, workers run them.

Task design after Celery's own advice: the task is idempotent (it claims the run in the database and does
nothing when another worker holds it), acknowledged late (a worker that dies before finishing leaves the
message to be redelivered), JSON only (no pickle), and its result and progress go through the database and
Redis, never through Celery's result backend."""

from __future__ import annotations

from celery import Celery

from server.settings import Settings

TRAIN_TASK = "nnplay.train"


def broker_of(settings: Settings) -> str:
    if settings.broker_url is None:
        raise ValueError("cluster mode needs NNPLAY_BROKER_URL (e.g. redis://host:6379/0)")
    return settings.broker_url.get_secret_value()


def make_celery(settings: Settings) -> Celery:
    app = Celery("nnplay", broker=broker_of(settings), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # results and progress live in the database and on the event bus
        task_acks_late=True,  # a worker killed mid-run has not acknowledged its message
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds one run at a time; the rest wait in Redis for any worker
        task_default_queue=settings.queue_name,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a restarted Redis is waited for, not given up on
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # A message not acknowledged within this time is handed out again: the redelivered task finds its run
        # claimed (or finished) and returns at once, so this only bounds how long a lost message waits.
        broker_transport_options={
            "visibility_timeout": 600,
            # an unreachable Redis is an error after seconds, not a request that hangs (kombu's default: none)
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        worker_hijack_root_logger=False,
    )
    return app
