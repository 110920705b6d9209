"""SIP transactions (RFC 3261 §17, RFC 6026), as sans-io state machines.

A transaction takes events (a message arrived, a timer fired, the TU
answered) and returns actions (send these bytes, start or stop a timer,
hand a message to the TU, report a timeout). The transport layer runs the
actions; nothing here touches a socket or a clock.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Union

from sip_stub.message import Request, Response

log = logging.getLogger("sip.transactions")

T1, T2, T4 = 0.5, 4.0, 5.0


class State(str, enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"  # RFC 6026: after a 2xx to INVITE, until its ACK or timer L
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class Send:
    message: Union[Request, Response]


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay: float


@dataclass(frozen=True)
class StopTimer:
    name: str


@dataclass(frozen=True)
class ToTU:
    message: Union[Request, Response]


@dataclass(frozen=True)
class TimedOut:
    pass


Action = Union[Send, StartTimer, StopTimer, ToTU, TimedOut]


@dataclass
class Transaction:
    key: tuple[str, ...]
    state: State
    history: list[tuple[str, str]] = field(default_factory=list)

    def _to(self, new: State) -> None:
        if new is not self.state:
            log.debug("transaction %s: %s -> %s", self.key, self.state.value, new.value)
            self.history.append((self.state.value, new.value))
            self.state = new

    @property
    def done(self) -> bool:
        return self.state is State.TERMINATED


# -- server side ---------------------------------------------------------------------
@dataclass
class ServerTransaction(Transaction):
    """Non-INVITE server transaction (§17.2.2)."""

    request: Request | None = None
    last_response: Response | None = None

    def on_request(self, req: Request) -> list[Action]:
        """A retransmission of the request: absorbed, or answered with the last response."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            return [Send(self.last_response)]
        return []

    def respond(self, resp: Response) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self.last_response = resp
        if resp.status < 200:
            self._to(State.PROCEEDING)
            return [Send(resp)]
        self._to(State.COMPLETED)
        return [Send(resp), StartTimer("J", 64 * T1)]

    def on_timer(self, name: str) -> list[Action]:
        if name == "J" and self.state is State.COMPLETED:
            self._to(State.TERMINATED)
        return []


@dataclass
class InviteServerTransaction(Transaction):
    """INVITE server transaction (§17.2.1 with RFC 6026's Accepted state)."""

    request: Request | None = None
    last_response: Response | None = None
    interval: float = T1
    acked: bool = False

    def on_request(self, req: Request) -> list[Action]:
        if req.method == "ACK":
            if self.state is State.COMPLETED:
                self._to(State.CONFIRMED)
                return [StopTimer("G"), StopTimer("H"), StartTimer("I", T4)]
            if self.state is State.ACCEPTED:
                return [ToTU(req)]  # the ACK for a 2xx belongs to the dialog
            return []
        # a retransmitted INVITE
        if self.state in (State.PROCEEDING, State.COMPLETED, State.ACCEPTED) and self.last_response is not None:
            return [Send(self.last_response)]
        return []

    def respond(self, resp: Response) -> list[Action]:
        if self.state is not State.PROCEEDING:
            return []
        self.last_response = resp
        if resp.status < 200:
            return [Send(resp)]
        self.interval = T1
        if resp.status < 300:
            self._to(State.ACCEPTED)
            # The 2xx is retransmitted until the ACK comes (§13.3.1.4), for at most 64*T1 (timer L).
            return [Send(resp), StartTimer("G", T1), StartTimer("L", 64 * T1)]
        self._to(State.COMPLETED)
        return [Send(resp), StartTimer("G", T1), StartTimer("H", 64 * T1)]

    def ack_received(self) -> list[Action]:
        """The dialog saw the ACK for our 2xx: stop retransmitting it."""
        self.acked = True
        return [StopTimer("G")]

    def on_timer(self, name: str) -> list[Action]:
        if name == "G" and self.state in (State.COMPLETED, State.ACCEPTED) and self.last_response is not None:
            self.interval = min(2 * self.interval, T2)
            return [Send(self.last_response), StartTimer("G", self.interval)]
        if name == "H" and self.state is State.COMPLETED:
            self._to(State.TERMINATED)
            return [TimedOut()]  # no ACK ever came
        if name == "I" and self.state is State.CONFIRMED:
            self._to(State.TERMINATED)
        if name == "L" and self.state is State.ACCEPTED:
            self._to(State.TERMINATED)
            if not self.acked:
                return [TimedOut()]  # 64*T1 of 2xx retransmissions and no ACK: the UAS core hangs up
        return []


# -- client side ---------------------------------------------------------------------
@dataclass
class ClientTransaction(Transaction):
    """Non-INVITE client transaction (§17.1.2)."""

    request: Request | None = None
    interval: float = T1

    def start(self) -> list[Action]:
        if self.request is None:
            raise RuntimeError("a client transaction starts with its request")
        return [Send(self.request), StartTimer("E", T1), StartTimer("F", 64 * T1)]

    def on_response(self, resp: Response) -> list[Action]:
        if self.state in (State.TRYING, State.PROCEEDING):
            if resp.status < 200:
                self._to(State.PROCEEDING)
                return [ToTU(resp)]
            self._to(State.COMPLETED)
            return [StopTimer("E"), StopTimer("F"), StartTimer("K", T4), ToTU(resp)]
        return []  # retransmitted finals are absorbed

    def on_timer(self, name: str) -> list[Action]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING) and self.request is not None:
            self.interval = T2 if self.state is State.PROCEEDING else min(2 * self.interval, T2)
            return [Send(self.request), StartTimer("E", self.interval)]
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            self._to(State.TERMINATED)
            return [StopTimer("E"), TimedOut()]
        if name == "K" and self.state is State.COMPLETED:
            self._to(State.TERMINATED)
        return []


@dataclass
class InviteClientTransaction(Transaction):
    """INVITE client transaction (§17.1.1)."""

    request: Request | None = None
    interval: float = T1
    ack: Request | None = None  # built by the layer for non-2xx finals

    def start(self) -> list[Action]:
        if self.request is None:
            raise RuntimeError("a client transaction starts with its request")
        return [Send(self.request), StartTimer("A", T1), StartTimer("B", 64 * T1)]

    def on_response(self, resp: Response) -> list[Action]:
        if self.state in (State.CALLING, State.PROCEEDING):
            if resp.status < 200:
                self._to(State.PROCEEDING)
                return [StopTimer("A"), ToTU(resp)]
            if resp.status < 300:
                self._to(State.TERMINATED)  # the TU acknowledges 2xx itself (§13.2.2.4)
                return [StopTimer("A"), StopTimer("B"), ToTU(resp)]
            self._to(State.COMPLETED)
            return [StopTimer("A"), StopTimer("B"), *([Send(self.ack)] if self.ack else []),
                    StartTimer("D", 32.0), ToTU(resp)]
        if self.state is State.COMPLETED and resp.status >= 300 and self.ack is not None:
            return [Send(self.ack)]  # the final was retransmitted: our ACK was lost
        return []

    def on_timer(self, name: str) -> list[Action]:
        if name == "A" and self.state is State.CALLING and self.request is not None:
            self.interval *= 2
            return [Send(self.request), StartTimer("A", self.interval)]
        if name == "B" and self.state is State.CALLING:
            self._to(State.TERMINATED)
            return [StopTimer("A"), TimedOut()]
        if name == "D" and self.state is State.COMPLETED:
            self._to(State.TERMINATED)
        return []
