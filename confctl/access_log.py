"""The access log, with secrets taken out: calendar feeds and join links carry `token=` in the URL."""
from __future__ import annotations

import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

SECRET_PARAM = re.compile(r"((?:^|[?&;])(?:token|access_token|grant)=)[^&;#]*", re.IGNORECASE)


def redact(path_qs: str) -> str:
    return SECRET_PARAM.sub(r"\1REDACTED", path_qs)


def routine(request: web.BaseRequest, response: web.StreamResponse) -> bool:
    """A media node's accepted heartbeat (every node, every 2 s): logged at DEBUG, not drowning the log."""
    return request.method == "POST" and request.path == "/api/media-nodes" and response.status == 200


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if routine(request, response):
            self.logger.debug('%s "%s %s" %d', request.remote, request.method, request.path, response.status)
            return
        self.logger.info('%s "%s %s HTTP/%d.%d" %d %d %.3fs', request.remote, request.method,
                         redact(request.path_qs), *request.version, response.status,
                         response.body_length, time)
