"""Logging for `confctl serve` and `confctl media-node`: INFO for what an operator reads, DEBUG for what
repeats per leg. aioice logs every ICE connectivity check at INFO (176 of 3,839 lines in 13 minutes of
`make run`); those lines are demoted to DEBUG here, so they show only when DEBUG is asked for."""
from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_ice_check(record: logging.LogRecord) -> bool:
    """aioice's per-pair check lines: "Connection(0) Check CandidatePair(...) State.WAITING -> ..."."""
    return record.name == "aioice.ice" and isinstance(record.msg, str) and record.msg.startswith("%s Check ")


class DemoteIceChecks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and is_ice_check(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # A record is judged against its own logger's level, already passed: judge it again as DEBUG.
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    ice = logging.getLogger("aioice.ice")
    if not any(isinstance(f, DemoteIceChecks) for f in ice.filters):
        ice.addFilter(DemoteIceChecks())
