"""TLS for the control plane and the nodes: the server side from a certificate and key, and the
one-line reason when a peer's certificate does not verify.

The client side is aiohttp's default context, which verifies against the system store or
`SSL_CERT_FILE` (a government network's own CA): verification is never switched off. Lives in
media/ because node processes use it; confctl/ imports it too.
"""
from __future__ import annotations

import logging
import ssl
from pathlib import Path

import aiohttp


class TlsSetupError(ValueError):
    """A certificate or key that cannot be used; the message says which file and why."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """HTTPS and WSS from a PEM certificate (its chain after it) and key. TLS 1.2 at least."""
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise TlsSetupError(f"{flag} {path}: no such file")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        raise TlsSetupError(f"--tls-cert {cert} / --tls-key {key}: {exc.reason or exc} "
                            "(PEM files; does the key belong to the certificate?)") from None
    except OSError as exc:
        raise TlsSetupError(f"--tls-cert {cert} / --tls-key {key}: {exc.strerror or exc}") from None
    return ctx


def scheme(tls: bool) -> str:
    return "https" if tls else "http"


def verification_failure(exc: BaseException, url: str) -> str | None:
    """One line for an operator when `url`'s certificate did not verify (None for other failures)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        why = getattr(cause, "verify_message", None) or str(cause)
        return (f"TLS: the certificate of {url} could not be verified ({why}); trust the CA that issued it "
                "(SSL_CERT_FILE=ca.pem, or the system store: update-ca-certificates)")
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS: no secure connection to {url} ({exc.os_error.strerror or exc.os_error})"  # type: ignore[attr-defined]
    return None


_said: set[str] = set()  # failures already logged by this process: one line per cause, not one per attempt


def log_verification_failure(log: logging.Logger, exc: BaseException, url: str) -> bool:
    """Logs `url`'s certificate failure once (an error an operator must fix); False if `exc` is not one."""
    why = verification_failure(exc, url)
    if why is None:
        return False
    if why not in _said:
        _said.add(why)
        log.error("%s", why)
    return True
