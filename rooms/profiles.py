"""Media profiles: per-stream rates with packet overhead (PRODUCT.md, bandwidth model).

Profiles are configuration: a topology file may carry a `profiles:` section that
replaces these defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class MediaProfile:
    name: str
    video_kbps: int  # 0 for audio-only
    audio_kbps: int
    width: int = 0
    height: int = 0
    fps: int = 0
    video_overhead: float = 0.05  # IP/UDP/RTP/SRTP on ~1200-byte packets
    audio_overhead: float = 0.25  # the same headers on 20 ms G.711 packets

    @property
    def has_video(self) -> bool:
        return self.video_kbps > 0

    @property
    def video_stream_kbps(self) -> int:
        return round(self.video_kbps * (1 + self.video_overhead)) if self.has_video else 0

    @property
    def audio_stream_kbps(self) -> int:
        return round(self.audio_kbps * (1 + self.audio_overhead))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "video_kbps": self.video_kbps,
            "audio_kbps": self.audio_kbps,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "video_overhead": self.video_overhead,
            "audio_overhead": self.audio_overhead,
            "video_stream_kbps": self.video_stream_kbps,
            "audio_stream_kbps": self.audio_stream_kbps,
        }


# Ordered best first: alternatives walk this order downwards.
DEFAULT_PROFILES: tuple[MediaProfile, ...] = (
    MediaProfile("hd1080", 4000, 64, 1920, 1080, 30),
    MediaProfile("hd720", 2000, 64, 1280, 720, 30),
    MediaProfile("sd", 800, 64, 640, 360, 30),
    MediaProfile("audio", 0, 64),
)


class ProfileError(ValueError):
    pass


def parse_profiles(raw: Any) -> tuple[MediaProfile, ...]:
    """A `profiles:` list from a topology file, best first."""
    if not isinstance(raw, list) or not raw:
        raise ProfileError("profiles: must be a non-empty list, best profile first")
    out: list[MediaProfile] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ProfileError(f"profiles[{i}]: needs a name")
        name = item["name"]
        if name in seen:
            raise ProfileError(f"profile {name}: defined twice")
        seen.add(name)
        try:
            p = MediaProfile(
                name=name,
                video_kbps=int(item.get("video_kbps", 0)),
                audio_kbps=int(item.get("audio_kbps", 64)),
                width=int(item.get("width", 0)),
                height=int(item.get("height", 0)),
                fps=int(item.get("fps", 0)),
                video_overhead=float(item.get("video_overhead", 0.05)),
                audio_overhead=float(item.get("audio_overhead", 0.25)),
            )
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"profile {name}: {exc}") from None
        if p.video_kbps < 0 or p.audio_kbps <= 0 or p.video_overhead < 0 or p.audio_overhead < 0:
            raise ProfileError(f"profile {name}: rates must be positive")
        out.append(p)
    return tuple(out)
