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
from typing import Mapping, Sequence

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


# -- rooms --------------------------------------------------------------------------------------
# A room is pre-empted like a link: a lower-precedence session holding a room the emergency needs
# moves to another room of its site that is free for all of its occurrences still to come (the main
# room first), or, when none is, gives the room up (its site leaves that session until the room comes
# back). Two emergencies never take a room from each other: the second one's site takes another room
# of that site (free ones first, then one a lower-precedence session gives up). So two emergencies at
# once get two rooms; the province's hall has two (`emergency`, then `main`).

Span = tuple[int, int]


@dataclass(frozen=True)
class RoomHold:
    """A booked session's hold on one room: its occurrences there, at its precedence."""
    session: str
    site: str
    room: str
    precedence: Precedence
    booked_at: int
    spans: tuple[Span, ...]  # every occurrence still to come: a move must fit them all


@dataclass(frozen=True)
class RoomAction:
    session: str
    site: str
    room: str  # the room it held
    kind: str  # move | release
    to_room: str | None = None  # move: where it goes


@dataclass(frozen=True)
class RoomTaking:
    rooms: dict[str, str]  # the room each of the emergency's sites gets
    actions: tuple[RoomAction, ...]
    refused: tuple[str, ...] = ()  # sites whose every room is held at equal or higher precedence


def _overlaps(spans: Sequence[Span], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def main_first(rooms: Sequence[str]) -> list[str]:
    """The order rooms are offered in: the site's main room, then the topology's order."""
    return sorted(rooms, key=lambda r: (r != "main", list(rooms).index(r)))


def take_rooms(wanted: Sequence[tuple[str, str | None]], site_rooms: Mapping[str, Sequence[str]],
               holds: Sequence[RoomHold], start: int, end: int, precedence: Precedence) -> RoomTaking:
    """The room each wanted (site, room or None) gets over [start, end), and who moves or gives up a room.

    A pinned room (the emergency room) is taken if it is free or held only at lower precedence; otherwise,
    and for an unpinned site, a free room of the site, main first, then one held only at lower precedence.
    """
    now = list(holds)
    chosen: dict[str, str] = {}
    actions: list[RoomAction] = []
    refused: list[str] = []

    def holders(site: str, room: str, spans: Sequence[Span]) -> list[RoomHold]:
        return [h for h in now if h.site == site and h.room == room and any(_overlaps(h.spans, s, e) for s, e in spans)]

    for site, pinned in wanted:
        order = main_first(site_rooms[site])
        free = [r for r in order if not holders(site, r, [(start, end)])]
        weaker = [r for r in order if all(h.precedence < precedence for h in holders(site, r, [(start, end)]))]
        if pinned is not None and pinned in weaker:
            room = pinned
        elif free or weaker:
            room = (free or weaker)[0]
        else:
            refused.append(site)
            continue
        chosen[site] = room
        victims = sorted(holders(site, room, [(start, end)]), key=lambda h: (int(h.precedence), -h.booked_at))
        now.append(RoomHold("", site, room, precedence, 0, ((start, end),)))  # ours now: nobody moves into it
        for v in victims:
            now.remove(v)
            to = next((r for r in order if r != room and not holders(site, r, v.spans)), None)
            if to is None:
                actions.append(RoomAction(v.session, site, room, "release"))
            else:
                actions.append(RoomAction(v.session, site, room, "move", to))
                now.append(RoomHold(v.session, site, to, v.precedence, v.booked_at, v.spans))
    return RoomTaking(chosen, tuple(actions), tuple(refused))
