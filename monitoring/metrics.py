"""`/metrics` for Prometheus (prometheus-client): what the pipeline measured, and what the bookings reserve.

Scraped with an operator's (or admin's) bearer token; the series are built at scrape time from the
quality pipeline's latest samples and the store, by a custom collector, so nothing is kept twice.

    scrape_configs:
      - job_name: confctl
        metrics_path: /metrics
        authorization: {type: Bearer, credentials_file: /etc/prometheus/confctl.token}
        static_configs: [{targets: ["confctl.example:8080"]}]
"""
from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitoring.pipeline import QualityPipeline

LEG_GAUGES = (("loss_percent", "loss_pct", "Packets the site sent that did not arrive, % over the last sample"),
              ("jitter_ms", "jitter_ms", "Interarrival jitter of what the site sends (RTCP), ms"),
              ("rtt_ms", "rtt_ms", "Round trip to the site (RTCP receiver reports), ms"),
              ("kbps_in", "kbps_in", "kbit/s the site sends to its node"),
              ("kbps_out", "kbps_out", "kbit/s its node forwards to the site"),
              ("fps", "fps", "Video frames a second the site delivers"),
              ("freezes", "freezes", "Freezes (> 200 ms without a frame) forwarded to the site in the last sample"),
              ("mos", "mos", "Audio MOS, ITU-T G.107 E-model"),
              ("video_score", "video_score", "Video score 1..5 (monitoring/video_score.py)"))


class ConfctlCollector(Collector):
    def __init__(self, pipeline: QualityPipeline, reserved: Any, bookings: Any, live: Any,
                 alarms_raised: dict[str, int] | None = None, alarms_open: int = 0, sip: dict[str, int] | None = None,
                 ports_refused: dict[tuple[str, str], int] | None = None):
        self.pipeline, self._reserved, self._bookings, self._live = pipeline, reserved, bookings, live
        self._raised, self._open, self._sip = alarms_raised or {}, alarms_open, sip or {}
        self._ports_refused = ports_refused or {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        samples = list(self.pipeline.latest.values())
        legs = [s for s in samples if s.kind != "trunk"]
        live = GaugeMetricFamily("confctl_live_legs", "Legs live on the media nodes, by kind", labels=["kind"])
        for kind in ("webrtc", "sip", "trunk"):
            live.add_metric([kind], sum(1 for s in samples if s.kind == kind))
        yield live
        for name, attr, doc in LEG_GAUGES:
            g = GaugeMetricFamily(f"confctl_leg_{name}", doc, labels=["session", "site", "node"])
            for s in legs:
                value = getattr(s, attr)
                if value is not None:
                    g.add_metric([s.session, s.site, s.node], float(value))
            yield g
        trunk = GaugeMetricFamily("confctl_trunk_kbps", "kbit/s on a node-to-node leg", labels=["session", "trunk", "direction"])
        for s in samples:
            if s.kind == "trunk":
                trunk.add_metric([s.session, s.site, "up"], s.kbps_in)
                trunk.add_metric([s.session, s.site, "down"], s.kbps_out)
        yield trunk
        policed = CounterMetricFamily("confctl_leg_policed_frames", "Frames of the site's camera its node dropped "
                                      "because it sent above its reserved rate (media/policing.py)",
                                      labels=["session", "site", "node"])
        for s in legs:
            if s.policed_frames:
                policed.add_metric([s.session, s.site, s.node], s.policed_frames)
        yield policed
        reserved = GaugeMetricFamily("confctl_link_reserved_kbps", "kbit/s the bookings reserve on a link now",
                                     labels=["link", "direction"])
        for (link, direction), kbps in sorted(self._reserved().items()):
            reserved.add_metric([link, direction], kbps)
        yield reserved
        live = GaugeMetricFamily("confctl_link_live_kbps", "kbit/s the live legs routed over a link carry now",
                                 labels=["link", "direction"])
        for (link, direction), kbps in sorted(self._live().items()):
            live.add_metric([link, direction], kbps)
        yield live
        yield GaugeMetricFamily("confctl_bookings", "Sessions booked (not cancelled) that have not ended",
                                value=self._bookings())
        raised = CounterMetricFamily("confctl_alarms_raised", "Alarms raised since this process started, by kind",
                                     labels=["kind"])
        for kind, n in sorted(self._raised.items()):
            raised.add_metric([kind], n)
        yield raised
        yield GaugeMetricFamily("confctl_alarms_open", "Alarms raised and not yet cleared", value=self._open)
        sip = CounterMetricFamily("confctl_sip_messages", "SIP messages the service handled, by outcome "
                                  "(this process and its workers)", labels=["outcome"])
        for outcome, n in sorted(self._sip.items()):
            sip.add_metric([outcome], n)
        yield sip
        refused = CounterMetricFamily("confctl_media_ports_refused", "Legs (ice) and phone calls (rtp) refused because "
                                      "every port of the host's media range was in use", labels=["node", "kind"])
        for (node, kind), n in sorted(self._ports_refused.items()):
            refused.add_metric([node, kind], n)
        yield refused


def render(pipeline: QualityPipeline, reserved: Any, bookings: Any, live: Any, **counters: Any) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConfctlCollector(pipeline, reserved, bookings, live, **counters))
    return generate_latest(registry)
