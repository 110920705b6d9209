"""Password guessing against the running service: the guessers are slowed, the real phone is not.

Guessers send from 127.0.0.2 and up (Linux routes all of 127/8 to lo), the real phone from
127.0.0.1: sipp's register_auth scenario, which fails on anything but 401 then 200.
Real UDP against one process, and against two worker processes sharing the throttle.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
import signal
import time
from dataclasses import dataclass, field

from confctl.keys import SIP_ENDPOINT, SIP_WORKERS
from sip_stub.fields import parse_auth
from sip_stub.message import Response, parse_message
from tests.media.peers import until
from tests.sip.test_sipp import sip, sipp  # noqa: F401  (fixture)
from tests.sip.test_workers import plane  # noqa: F401  (fixture)
from tests.sip.udp_client import UdpClient

USER, PASSWORD = "desk-101", "s3cret-pass"
TOO_MANY = "too many"  # in the reason of a 403 that refused a guess unchecked


class Guesser:
    """One address answering one challenge over and over, nonce-count after nonce-count (cheap guessing)."""

    def __init__(self, ua: UdpClient, host: str, port: int, user: str = USER):
        self.ua, self.host, self.port, self.user = ua, host, port, user
        self.call_id = f"guess-{host}-{ua.port}"
        self.cseq = 0
        self.challenge: dict[str, str] | None = None

    @classmethod
    async def open(cls, host: str, port: int, user: str = USER) -> "Guesser":
        _, ua = await asyncio.get_running_loop().create_datagram_endpoint(UdpClient, local_addr=(host, 0))
        return cls(ua, host, port, user)

    def _register(self, auth: str = "") -> bytes:
        self.cseq += 1
        return (f"REGISTER sip:127.0.0.1:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.host}:{self.ua.port};branch=z9hG4bKg{self.cseq}x{self.ua.port};rport\r\n"
                f"From: <sip:{self.user}@127.0.0.1>;tag=g{self.ua.port}\r\nTo: <sip:{self.user}@127.0.0.1>\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} REGISTER\r\n"
                f"Contact: <sip:{self.user}@{self.host}:{self.ua.port}>\r\nMax-Forwards: 70\r\n"
                f"{auth}Content-Length: 0\r\n\r\n").encode()

    async def _final(self, data: bytes) -> Response:
        """Sent, and retransmitted as a phone would (the loopback drops too, when the box is busy)."""
        for wait in (1.0, 2.0, 4.0, 4.0):
            self.ua.send(data, self.port)
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = parse_message(await self.ua.recv(left))
                except asyncio.TimeoutError:
                    break
                if isinstance(msg, Response) and msg.status >= 200 and msg.cseq()[0] == self.cseq:
                    return msg
        raise AssertionError(f"{self.host}: no answer to REGISTER {self.cseq}")

    async def guess(self, password: str) -> Response:
        if self.challenge is None:
            r = await self._final(self._register())
            assert r.status == 401, r.status
            self.challenge = parse_auth(next(v for v in r.header_all("WWW-Authenticate") if "MD5" in v))[1]
        c, nc = self.challenge, f"{self.cseq + 1:08x}"
        h = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        uri = f"sip:127.0.0.1:{self.port}"
        ha1, ha2 = h(f"{self.user}:{c['realm']}:{password}"), h(f"REGISTER:{uri}")
        response = h(f"{ha1}:{c['nonce']}:{nc}:c{self.cseq}:auth:{ha2}")
        return await self._final(self._register(
            f'Authorization: Digest username="{self.user}", realm="{c["realm"]}", nonce="{c["nonce"]}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="c{self.cseq}"\r\n'))

    def close(self) -> None:
        self.ua.transport.close()  # type: ignore[union-attr]


@dataclass
class Attack:
    """Guessers on 127.0.0.2..250 until `at_least` guesses are answered and `until_done` is set."""

    port: int
    at_least: int = 1000
    until_done: asyncio.Event = field(default_factory=asyncio.Event)
    checked: int = 0  # answered "Forbidden": the password was tried
    refused: int = 0  # answered "too many...": refused unchecked
    answered_after_done: int = 0
    seconds: float = 0.0
    addresses: int = 249

    @property
    def answered(self) -> int:
        return self.checked + self.refused

    async def _run(self, host: str) -> None:
        g = await Guesser.open(host, self.port)
        try:
            for n in itertools.count():
                if self.answered >= self.at_least and self.until_done.is_set():
                    return
                r = await g.guess(f"guess-{host}-{n}")
                assert r.status == 403, (r.status, r.reason)
                if TOO_MANY in r.reason:
                    self.refused += 1
                else:
                    self.checked += 1
                if self.until_done.is_set():
                    self.answered_after_done += 1
                await asyncio.sleep(0.2)  # each address's pace: ~1,200 guesses/s from 249 of them, at most
        finally:
            g.close()

    async def run(self) -> None:
        started = time.monotonic()
        try:
            await asyncio.gather(*(self._run(f"127.0.0.{n}") for n in range(2, 2 + self.addresses)))
        finally:
            self.seconds = time.monotonic() - started

    def most_checked(self) -> float:
        """At most, had each address been held to its back-off: checks at 0, 1, 3, 7... s (and ten to start it)."""
        return self.addresses * (1 + math.log2(self.seconds + 1)) + 10


async def _the_real_phone_registers_under_attack(port: int, tmp_path) -> tuple[Attack, float]:
    attack = Attack(port)
    guessing = asyncio.create_task(attack.run())
    try:
        await until(lambda: attack.answered >= 300 or guessing.done(), what="300 guesses answered")
        started = time.monotonic()
        rc, log = await sipp(port, "register_auth.xml", "-s", USER, "-au", USER, "-ap", PASSWORD, calls=1,
                             cwd=tmp_path)
        took = time.monotonic() - started
        during = attack.answered
        attack.until_done.set()
        await guessing
    finally:
        attack.until_done.set()
        if not guessing.done():
            guessing.cancel()
        await asyncio.gather(guessing, return_exceptions=True)
    assert rc == 0, log  # 401 then 200: registered on its first answer to the challenge
    assert during >= 300 and attack.answered_after_done > 0  # the guessing went on all the while
    assert attack.answered >= 1000
    # each address is slowed to its back-off (the account was under attack from its tenth failure)
    assert attack.checked <= attack.most_checked(), (attack, attack.most_checked())
    print(f"\nreal phone registered in {took * 1000:.0f} ms (sipp: 401, then 200) while {attack.addresses} addresses "
          f"guessed {attack.answered} times in {attack.seconds:.1f} s: {attack.checked} checked, "
          f"{attack.refused} refused unchecked")
    return attack, took


async def test_the_real_phone_registers_on_its_first_try_during_a_thousand_guesses(sip, tmp_path):  # noqa: F811
    port, store, server = sip
    attack, _ = await _the_real_phone_registers_under_attack(port, tmp_path)
    (binding,) = store.bindings(USER, int(time.time()))
    assert binding.contact.startswith(f"sip:{USER}@127.0.0.1:")
    stats = server.app[SIP_ENDPOINT].stats
    assert stats["auth_failed"] == attack.checked and stats["auth_throttled"] == attack.refused


async def test_the_real_phone_registers_on_its_first_try_with_workers_answering(plane, tmp_path):  # noqa: F811
    port, store, _, status = plane
    attack, _ = await _the_real_phone_registers_under_attack(port, tmp_path)
    (binding,) = store.bindings(USER, int(time.time()))
    assert binding.contact.startswith(f"sip:{USER}@127.0.0.1:")

    async def reported() -> dict | None:
        s = await status()
        failed = sum(w["stats"].get("auth_failed", 0) for w in s["workers"])
        return s if failed == attack.checked else None
    s = await until(reported, what="the workers reporting every checked guess")
    assert all(w["stats"]["guesses_heard"] > 0 for w in s["workers"])  # each heard the other's failures


async def _register_clean(port: int, host: str = "127.0.0.1") -> Response:
    phone = await Guesser.open(host, port)
    try:
        return await phone.guess(PASSWORD)
    finally:
        phone.close()


async def test_a_guesser_is_refused_after_ten_failures_while_a_clean_address_registers(sip):  # noqa: F811
    port, store, server = sip
    guesser = await Guesser.open("127.0.0.2", port)
    try:
        for n in range(10):
            r = await guesser.guess(f"guess-{n}")
            assert (r.status, r.reason) == (403, "Forbidden")  # checked: a wrong password
        r = await guesser.guess(PASSWORD)  # even the right one, from this address: refused unchecked
        assert r.status == 403 and TOO_MANY in r.reason
    finally:
        guesser.close()
    ok = await _register_clean(port)  # the phone, from its own address, on its first try
    assert ok.status == 200
    stats = server.app[SIP_ENDPOINT].stats
    assert stats["auth_failed"] == 10 and stats["auth_throttled"] == 1


async def test_the_throttle_holds_whichever_worker_reads_the_guess(plane):  # noqa: F811
    """Worker A is stopped while B checks ten wrong guesses; then A alone reads: it refuses the eleventh."""
    port, _, app, status = plane
    a, b = app[SIP_WORKERS].procs
    stopped: set[int] = set()

    def stop(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        stopped.add(pid)

    def resume(pid: int) -> None:
        os.kill(pid, signal.SIGCONT)
        stopped.discard(pid)

    async def stats_of(pid: int) -> dict:
        return next(w["stats"] for w in (await status())["workers"] if w["pid"] == pid)

    guesser = await Guesser.open("127.0.0.3", port)
    try:
        stop(a.pid)
        for n in range(10):
            r = await guesser.guess(f"guess-{n}")
            assert (r.status, r.reason) == (403, "Forbidden")
        resume(a.pid)
        stop(b.pid)
        resumed = time.monotonic()

        async def reported_since_resumed(seconds: float) -> bool:  # (the same clock: the server runs in here)
            w = next(w for w in (await status())["workers"] if w["pid"] == a.pid)
            return w["reported_s_ago"] is not None and time.monotonic() - w["reported_s_ago"] >= resumed + seconds
        # A's pipe held what B recorded, relayed by the main process; A read it on waking, before its
        # next report: wait for the one after that, two seconds on
        await until(lambda: reported_since_resumed(2.1), what="A's second report since it was resumed")
        r = await guesser.guess(PASSWORD)
        assert r.status == 403 and TOO_MANY in r.reason
        ok = await _register_clean(port)
        assert ok.status == 200
        a_stats = await stats_of(a.pid)
        assert a_stats["auth_failed"] == 0 and a_stats["guesses_heard"] >= 10  # the eleventh was never checked
    finally:
        guesser.close()
        for pid in list(stopped):
            resume(pid)
