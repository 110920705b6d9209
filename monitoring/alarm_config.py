"""Alarm thresholds: defaults, per link class (the child site's level) and per site, and webhooks.

A YAML file (`confctl serve --alarms FILE`), every key optional:

    defaults: {loss_pct: 2, jitter_audio_ms: 68.65, jitter_video_ms: 90, rtt_ms: 300, mos: 3.6, link_pct: 90,
               absent_s: 300}
    link_class:                # by the level of the site at the link's lower end
      mobile: {loss_pct: 3}
    sites:
      cc-antu: {jitter_audio_ms: 50}   # `jitter_ms` sets audio and video at once
    window: {samples: 5, percentile: 50}
    hysteresis: {raise_samples: 2, clear_samples: 2, clear_ratio: 0.75, mos_clear_margin: 0.2}
    webhooks: [{url: "http://ops.example/hook", timeout_s: 5, retries: 3}]

Jitter is judged by medium. Audio's default is the E-model's own tolerance (monitoring/emodel.py:
what a jitter buffer absorbs before the mouth-to-ear delay reaches Id's knee, 68.65 ms with the
pipeline's 40 ms playout). Video's is 90 ms: its buffer delays the picture by what it absorbs, and
ITU-R BT.1359 finds sound leading the picture by more than 90 ms unacceptable. Where a node reports
one jitter for a leg's audio and video together (their maximum), it is judged against the larger of
the two, so it raises only when one of them is surely beyond its own.

A leg's figures are judged over a window, not one sample: the `percentile` of the last `samples`
samples of the leg (for MOS, where lower is worse, the mirrored one), judged once the window is full;
one spike moves a median nowhere, a condition held for most of the window does. Hysteresis then
counts rounds of that judgement.

A site whose link is marked high-delay (`rtt_ms` in the topology) gets an RTT threshold of its
declared RTT plus `rtt_ms`, and a MOS threshold lowered by what that declared delay alone costs
the E-model: its alarms fire on what is wrong, not on what the satellite always does.
A malformed file is refused when the service starts, naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from monitoring.emodel import OPUS, audio_mos, jitter_tolerance_ms

PLAYOUT_MS = 40  # as the pipeline's mouth-to-ear delay (monitoring/pipeline.py)
AUDIO_JITTER_MS = jitter_tolerance_ms(PLAYOUT_MS)  # 68.65: the E-model's tolerance on a terrestrial leg
VIDEO_JITTER_MS = 90.0  # ITU-R BT.1359: sound leading the picture by more than 90 ms is unacceptable


class AlarmConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Thresholds:
    loss_pct: float = 2.0  # packet loss of what a site sends
    jitter_audio_ms: float = AUDIO_JITTER_MS
    jitter_video_ms: float = VIDEO_JITTER_MS
    rtt_ms: float = 300.0
    mos: float = 3.6  # audio MOS below this raises
    link_pct: float = 90.0  # live load above this % of the link's rate raises
    absent_s: float = 300.0  # a booked site not joined this long into its session


@dataclass(frozen=True)
class Window:
    samples: int = 5  # a leg's figures are judged over its last this many samples (15 s at the 3 s sampling)
    percentile: float = 50.0  # ... by this percentile of them (the median: most of the window must be beyond)


@dataclass(frozen=True)
class Hysteresis:
    raise_samples: int = 2  # consecutive samples beyond the threshold before raising
    clear_samples: int = 2  # consecutive samples back within the clear level before clearing
    clear_ratio: float = 0.75  # "above" alarms clear below threshold × this
    mos_clear_margin: float = 0.2  # the MOS alarm clears above threshold + this


@dataclass(frozen=True)
class Webhook:
    url: str
    timeout_s: float = 5.0
    retries: int = 3  # attempts after the first


@dataclass(frozen=True)
class AlarmConfig:
    defaults: Thresholds = Thresholds()
    link_class: dict[str, dict[str, float]] = field(default_factory=dict)
    sites: dict[str, dict[str, float]] = field(default_factory=dict)
    hysteresis: Hysteresis = Hysteresis()
    webhooks: tuple[Webhook, ...] = ()
    window: Window = Window()

    def for_site(self, site: str, level: str | None, declared_rtt_ms: int | None) -> Thresholds:
        t = replace(self.defaults, **self.link_class.get(level or "", {}))
        t = replace(t, **self.sites.get(site, {}))
        if declared_rtt_ms:
            expected = audio_mos(OPUS, 0.0, PLAYOUT_MS) - audio_mos(OPUS, 0.0, declared_rtt_ms / 2 + PLAYOUT_MS)
            t = replace(t, rtt_ms=t.rtt_ms + declared_rtt_ms, mos=round(t.mos - expected, 2))
        return t


def _thresholds(where: str, doc: Any) -> dict[str, float]:
    """Threshold overrides; `jitter_ms` (one figure for both media) sets audio and video unless they are given."""
    out = _numbers(where, doc, set(Thresholds.__dataclass_fields__) | {"jitter_ms"})
    both = out.pop("jitter_ms", None)
    if both is not None:
        out.setdefault("jitter_audio_ms", both)
        out.setdefault("jitter_video_ms", both)
    return out


def _numbers(where: str, doc: Any, allowed: set[str]) -> dict[str, float]:
    if not isinstance(doc, dict):
        raise AlarmConfigError(f"{where}: expected a mapping, got {type(doc).__name__}")
    out = {}
    for k, v in doc.items():
        if k not in allowed:
            raise AlarmConfigError(f"{where}.{k}: unknown threshold (known: {', '.join(sorted(allowed))})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise AlarmConfigError(f"{where}.{k}: expected a number ≥ 0, got {v!r}")
        out[k] = float(v)
    return out


def parse_config(doc: Any, known_sites: set[str] | None = None) -> AlarmConfig:
    if doc is None:
        return AlarmConfig()
    if not isinstance(doc, dict):
        raise AlarmConfigError("the alarm configuration must be a mapping")
    unknown = set(doc) - {"defaults", "link_class", "sites", "hysteresis", "webhooks", "window"}
    if unknown:
        raise AlarmConfigError(f"unknown key(s): {', '.join(sorted(unknown))}")
    defaults = Thresholds(**_thresholds("defaults", doc.get("defaults") or {}))
    classes = {str(k): _thresholds(f"link_class.{k}", v) for k, v in (doc.get("link_class") or {}).items()}
    sites = {str(k): _thresholds(f"sites.{k}", v) for k, v in (doc.get("sites") or {}).items()}
    if known_sites is not None:
        for s in sites:
            if s not in known_sites:
                raise AlarmConfigError(f"sites.{s}: not a site of the topology")
    h = _numbers("hysteresis", doc.get("hysteresis") or {}, set(Hysteresis.__dataclass_fields__))
    for k in ("raise_samples", "clear_samples"):
        if k in h and (h[k] < 1 or h[k] != int(h[k])):
            raise AlarmConfigError(f"hysteresis.{k}: expected a whole number ≥ 1")
    hyst = Hysteresis(**{k: (int(v) if k.endswith("samples") else v) for k, v in h.items()})
    w = _numbers("window", doc.get("window") or {}, set(Window.__dataclass_fields__))
    if "samples" in w and (w["samples"] < 1 or w["samples"] != int(w["samples"])):
        raise AlarmConfigError("window.samples: expected a whole number ≥ 1")
    if "percentile" in w and not 0 < w["percentile"] <= 100:
        raise AlarmConfigError("window.percentile: expected a number above 0, at most 100")
    window = Window(int(w.get("samples", Window.samples)), w.get("percentile", Window.percentile))
    hooks = doc.get("webhooks") or []
    if not isinstance(hooks, list):
        raise AlarmConfigError("webhooks: expected a list")
    webhooks = []
    for i, w in enumerate(hooks):
        if not isinstance(w, dict) or not isinstance(w.get("url"), str) or not w["url"].startswith(("http://", "https://")):
            raise AlarmConfigError(f"webhooks[{i}]: expected {{url: http(s)://...}}")
        extra = _numbers(f"webhooks[{i}]", {k: v for k, v in w.items() if k != "url"}, {"timeout_s", "retries"})
        webhooks.append(Webhook(w["url"], extra.get("timeout_s", 5.0), int(extra.get("retries", 3))))
    return AlarmConfig(defaults, classes, sites, hyst, tuple(webhooks), window)


def load_config(path: Path | None, known_sites: set[str] | None = None) -> AlarmConfig:
    if path is None:
        return AlarmConfig()
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise AlarmConfigError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AlarmConfigError(f"{path}: not YAML: {exc}") from None
    try:
        return parse_config(doc, known_sites)
    except AlarmConfigError as exc:
        raise AlarmConfigError(f"{path}: {exc}") from None
