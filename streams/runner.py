"""`currents worker`: run the Faust worker with a shutdown that cannot hang.

Faust workers are known to hang on shutdown. On SIGTERM or SIGINT the worker starts a
clean stop (commit offsets, leave the group) and a watchdog thread; if the clean stop
has not finished within ``worker_stop_grace_s`` the process exits anyway. Nothing is
lost by that: state in Redis carries per-partition watermarks, so whatever Kafka
redelivers after an unclean exit is recognised and skipped.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import faust

from currents.gc_tuning import tune_for_batches
from currents.logs import configure_logging, logging_config
from currents.redis_client import tls_options
from currents.redis_loading import wait_until_loaded_sync
from currents.settings import Settings
from currents.topics import ensure_topics
from online_models import kernels
from streams.app import create_app

log = logging.getLogger("currents.worker")


class GuardedWorker(faust.Worker):
    stop_grace_s: float = 10.0

    def _arm_watchdog(self) -> None:
        def force_exit() -> None:
            log.error(
                "clean stop exceeded its grace period; exiting",
                extra={"grace_s": self.stop_grace_s},
            )
            logging.shutdown()
            os._exit(0)

        watchdog = threading.Timer(self.stop_grace_s, force_exit)
        watchdog.daemon = True
        watchdog.start()
        handler = getattr(self.app, "currents_resources", {}).get("handler")
        if handler is not None:
            handler.stopping = True
            self.app.loop.call_soon_threadsafe(handler.watch.stop)

    def _on_sigterm(self) -> None:
        self._arm_watchdog()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm_watchdog()
        super()._on_sigint()


def run_worker(settings: Settings, **worker_options: Any) -> None:
    configure_logging(settings.log_level, settings.log_json)
    bootstrap, redis_url = settings.require_servers()
    wait_until_loaded_sync(redis_url, "worker", **tls_options(redis_url, settings))
    ensure_topics(bootstrap, settings)  # idempotent: a lone worker needs no set-up step
    app = create_app(settings)
    worker = GuardedWorker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        logging_config=logging_config(settings.log_level, settings.log_json),
        **worker_options,
    )
    worker.stop_grace_s = settings.worker_stop_grace_s
    tune_for_batches()
    kernels.warm_up()  # the first batch's slates must not wait for the compiler
    if settings.worker_nice:
        # Before Faust starts its threads, so that every one of them inherits it.
        os.nice(settings.worker_nice)
    log.info("worker starting", extra={"group": settings.worker_group})
    worker.execute_from_commandline()
