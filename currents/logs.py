"""Structured logging: one JSON object per line, and no user ids in plain text.

Log a user with :func:`pseudonym`, a keyed hash that lets operators correlate lines
without revealing who the user is.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sys
import time
from typing import Any

import orjson

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Read straight from the environment (Settings.pseudonym_key documents it) because log
# records are formatted before, and outside of, any settings object.
_PSEUDONYM_KEY = os.environ.get("CURRENTS_PSEUDONYM_KEY", "").encode() or os.urandom(16)


def pseudonym(user_id: str) -> str:
    return hmac.new(_PSEUDONYM_KEY, user_id.encode(), hashlib.sha256).hexdigest()[:16]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                payload[name] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


NOISY_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "uvicorn.access")


def logging_config(level: str = "INFO", json_lines: bool = True) -> dict[str, Any]:
    """A dictConfig for processes whose framework configures logging itself (Faust)."""
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    formatter = (
        {"()": "currents.logs.JsonFormatter"}
        if json_lines
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"currents": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "currents",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": quiet} for name in NOISY_LOGGERS},
    }


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
