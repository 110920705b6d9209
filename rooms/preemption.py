"""Pre-emption for an emergency: which lower-precedence sessions give up what, on which link. Pure.

An emergency (or any session of higher precedence) that does not fit takes capacity from the
sessions of lower precedence overlapping it, link by link and direction by direction:

- Only congested links are touched, and on each only what it lacks ("need" = demand + held − limit).
- Victims are taken in a defined order: lowest precedence first, then the latest booked.
- Degrade before drop: every victim is first moved down its ladder (a lower profile or a smaller
  layout for its sites behind that link) one victim at a time, stopping at the mildest step that
  covers what is still needed; only when every victim is at its lowest degraded step and that is not
  enough are legs dropped (load 0), in the same order.
- Restoration is the reverse: once the emergency ends, each pre-empted (session, link) gets back the
  richest step that fits beside what is held then, in the order of precedence (highest first), then
  the earliest booked.

A ladder is what a session would put on one (link, direction) at each step, richest first, ending
with its lowest degraded step; dropping (0) is implicit. The caller builds ladders from media plans.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from rooms.ids import Direction, LinkId

LinkDir = tuple[LinkId, Direction]


class Precedence(enum.IntEnum):
    ROUTINE = 0
    PRIORITY = 1
    EMERGENCY = 2


@dataclass(frozen=True)
class Holding:
    """An overlapping session's hold on one (link, direction): its ladder and where it is on it."""
    session: str
    precedence: Precedence
    booked_at: int
    ladder: tuple[tuple[str, int], ...]  # (step name, kbps), richest first: ("hd720", 4280), ("speaker-only", 2180)
    step: int = 0  # index into the ladder now; len(ladder) means dropped

    @property
    def kbps(self) -> int:
        return self.ladder[self.step][1] if self.step < len(self.ladder) else 0


@dataclass(frozen=True)
class Action:
    session: str
    link: LinkId
    direction: Direction
    kind: str  # degrade | drop | restore
    step: str  # the step it is moved to ("dropped" for a drop)
    from_kbps: int
    to_kbps: int

    @property
    def freed_kbps(self) -> int:
        return self.from_kbps - self.to_kbps


@dataclass(frozen=True)
class Preemption:
    actions: tuple[Action, ...]
    short: dict[LinkDir, int] = field(default_factory=dict)  # what a link still lacks after every pre-emption

    @property
    def fits(self) -> bool:
        return not self.short


def _victim_order(h: Holding) -> tuple[int, int]:
    return (int(h.precedence), -h.booked_at)  # lowest precedence, then latest booked


def preempt(demand: dict[LinkDir, int], limits: dict[LinkDir, int], held: dict[LinkDir, list[Holding]],
            precedence: Precedence) -> Preemption:
    """What must give way so that `demand` (kbit/s per link and direction) fits under `limits`."""
    actions: list[Action] = []
    short: dict[LinkDir, int] = {}
    for key in sorted(demand):
        holdings = held.get(key, [])
        need = demand[key] + sum(h.kbps for h in holdings) - limits[key]
        if need <= 0:
            continue  # uncongested: nobody on it is touched
        victims = sorted((h for h in holdings if h.precedence < precedence), key=_victim_order)
        at = {h.session: h for h in victims}
        # Degrade, victim by victim, to the mildest step that covers what is still needed.
        for h in victims:
            if need <= 0:
                break
            lowest = len(h.ladder) - 1
            if h.step >= lowest:
                continue
            step = next((s for s in range(h.step + 1, lowest + 1) if h.kbps - h.ladder[s][1] >= need), lowest)
            freed = h.kbps - h.ladder[step][1]
            if freed > 0:
                actions.append(Action(h.session, key[0], key[1], "degrade", h.ladder[step][0], h.kbps, h.ladder[step][1]))
                at[h.session] = Holding(h.session, h.precedence, h.booked_at, h.ladder, step)
                need -= freed
        # Only then drop, in the same order, until enough.
        for h in victims:
            if need <= 0:
                break
            cur = at[h.session]
            if cur.kbps > 0:
                actions.append(Action(h.session, key[0], key[1], "drop", "dropped", cur.kbps, 0))
                need -= cur.kbps
        if need > 0:
            short[key] = need
    return Preemption(tuple(actions), short)


def restore(taken: list[tuple[LinkDir, Holding]], limits: dict[LinkDir, int], held: dict[LinkDir, int]) -> list[Action]:
    """After the emergency: each pre-empted hold (where it is now on its ladder) gets back the richest
    step that fits beside `held` (kbit/s per link and direction of everyone else, the emergency gone)."""
    actions: list[Action] = []
    room = {k: limits[k] - held.get(k, 0) for k in limits}
    for key, h in sorted(taken, key=lambda kh: (-int(kh[1].precedence), kh[1].booked_at, kh[1].session)):
        free = room.get(key, 0)
        best = next((s for s, (_, kbps) in enumerate(h.ladder) if kbps <= free), None)
        if best is None or best >= h.step:
            room[key] = free - h.kbps  # nothing richer fits: it keeps what it has
            continue
        name, kbps = h.ladder[best]
        actions.append(Action(h.session, key[0], key[1], "restore", name, h.kbps, kbps))
        room[key] = free - kbps
    return actions
