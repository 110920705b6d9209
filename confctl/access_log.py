"""The access log, with secrets taken out (calendar feeds and join links carry `token=` in the URL) and
nothing that could forge a line: control and bidi characters are written as escapes. What nodes and probes
repeat every few seconds goes to DEBUG."""
from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

SECRET_PARAM = re.compile(r"((?:^|[?&;])(?:token|access_token|grant)=)[^&;#]*", re.IGNORECASE)
# What a log line must never hold raw: C0/C1 controls (a line feed starts a forged line, ESC recolours a
# terminal), line/paragraph separators, bidi embeddings, overrides and isolates (they reorder what is read).
UNLOGGABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def redact(path_qs: str) -> str:
    return SECRET_PARAM.sub(r"\1REDACTED", path_qs)


def loggable(text: str) -> str:
    """`text` with every character that could forge or disguise a log line written as an escape."""
    return UNLOGGABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                          else f"\\u{ord(m.group()):04x}", text)


# Lines every node, control plane or load balancer repeats every few seconds: of 3,839 lines `make run` logged
# in 13 minutes, 2,686 were the control plane reading a node's /figures. Logged at DEBUG when answered 200;
# a refusal or error on them still shows at INFO.
ROUTINE = frozenset({
    ("POST", "/api/media-nodes"),  # a node's heartbeat: it registers again every 2 s
    ("GET", "/figures"),  # the control plane reading a node's live figures
    ("GET", "/health"),  # the control plane's direct probe of a node
    ("GET", "/api/health"),  # a load balancer's (or `make run`'s) probe of the control plane
})


def routine(method: str, path: str, status: int) -> bool:
    return status == 200 and (method, path) in ROUTINE


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if routine(request.method, request.path, response.status):
            if self.logger.isEnabledFor(logging.DEBUG):
                self.logger.debug('%s "%s %s" %d', request.remote, request.method, request.path, response.status)
            return
        # path_qs is percent-encoded as received; what a lenient parser let through raw is escaped here
        self.logger.info('%s "%s %s HTTP/%d.%d" %d %d %.3fs', request.remote, request.method,
                         loggable(redact(request.path_qs)), *request.version, response.status,
                         response.body_length, time)
