"""When a media node is down: a phi accrual failure detector, corroborated by a direct probe (pure).

A fixed silence (4 s of a 2-s beat) took all 11 nodes for dead on a loaded 2-core machine: the beats
were late because the machine, often the control plane itself, was slow, not because the nodes died.
So, as Cassandra and Akka do (Hayashibara et al., "The phi accrual failure detector", 2004):
- each node's beat intervals are learned (an exponentially weighted mean and variance, kept in its
  row so every control-plane instance judges from the same history);
- a silence is judged by phi = -log10(P(an interval this long)), under a normal distribution of the
  learned intervals plus an acceptable pause, with a floor on the deviation (Akka's
  `min-std-deviation`, `acceptable-heartbeat-pause`);
- the control plane's own event-loop lag is taken off the silence first: a control plane that
  stalled does not blame the node;
- phi above SUSPECT only suspects: the node is probed directly (GET /health). Down means the probe
  failed too. A SIGKILLed node refuses the probe at once, so it is down about SUSPECT's silence
  after its last beat (~3.6 s with 2-s beats); a live node on a starved machine answers the probe,
  however late its beats.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

SUSPECT_PHI = 3.0  # P(a live node this silent) = 1e-3 under the learned distribution: worth a probe
MIN_STD_S = 0.3  # beats on an idle loopback are almost exact: without a floor, 50 ms late would be "dead"
ACCEPTABLE_PAUSE_S = 1.0  # a GC pause, a slow disk write on the node: not evidence
ALPHA = 0.1  # weight of the newest interval in the mean and variance (~the last 20 beats)
MAX_LEARNED_S = 30.0  # an interval longer than this is an outage and a re-registration, not a beat
HARD_DOWN_S = 60.0  # with no watcher running at all (a test app, a stopped loop), silence this long is down

# The timings between processes, in this one place (media/contracts/node.py re-exports them):
HEARTBEAT_S = 2.0  # a node re-registers this often (media/node_server.py); also its declared beat, the first guess
# A child node whose session's root has not answered this long tells its sites to rejoin through the control plane
# (media/cascade_link.py): by then the control plane has taken the root for down (phi past SUSPECT_PHI, ~3.6 s of
# silence with 2-s beats, and a failed probe) and places them on a healthy node.
ROOT_LOST_S = 5.0
TRUNK_HEARTBEAT_S = 2.0  # WebSocket pings on a trunk: a vanished peer is noticed within two of them


@dataclass(frozen=True)
class Arrivals:
    """What a node's beats taught us: mean and variance of the interval between them, seconds."""
    mean_s: float
    var_s2: float

    def after(self, interval_s: float) -> "Arrivals":
        """The statistics with one more observed interval (too-long ones are outages, not learned)."""
        if not 0 < interval_s <= MAX_LEARNED_S:
            return self
        diff = interval_s - self.mean_s
        mean = self.mean_s + ALPHA * diff
        return Arrivals(mean, (1 - ALPHA) * (self.var_s2 + ALPHA * diff * diff))


def first_arrivals(heartbeat_s: float) -> Arrivals:
    """Before any interval is seen: the node's declared beat, with the floor's spread."""
    return Arrivals(heartbeat_s, MIN_STD_S ** 2)


def phi(silence_s: float, arrivals: Arrivals) -> float:
    """-log10 of the probability that a live node's next beat comes later than `silence_s`."""
    std = max(MIN_STD_S, math.sqrt(max(0.0, arrivals.var_s2)))
    z = (silence_s - arrivals.mean_s - ACCEPTABLE_PAUSE_S) / std
    later = 0.5 * math.erfc(z / math.sqrt(2))
    return math.inf if later <= 0 else -math.log10(later)


class Verdict(str, enum.Enum):
    UP = "up"
    SUSPECT = "suspect"  # probe it
    DOWN = "down"


def judge(silence_s: float, loop_lag_s: float, arrivals: Arrivals, probe_ok: bool | None = None) -> Verdict:
    """UP, SUSPECT (no probe yet: `probe_ok` None) or DOWN (suspected and the probe failed).
    `loop_lag_s`: how late this control plane's own loop ran lately, taken off the silence."""
    if phi(max(0.0, silence_s - max(0.0, loop_lag_s)), arrivals) < SUSPECT_PHI:
        return Verdict.UP
    if probe_ok is None:
        return Verdict.SUSPECT
    return Verdict.UP if probe_ok else Verdict.DOWN
