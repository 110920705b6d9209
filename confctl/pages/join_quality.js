// Whether the picture a site sends is below what its session's profile asks, and why, in words.
// Pure: figures in (the profile, the camera track's settings, getStats' outbound-rtp), a verdict out.
"use strict";

function pictureVerdict(asked, camera, sent, limitation) {
  // asked {name, width, height, fps}; camera {width, height, fps}; sent {width, height, fps}; limitation:
  // outbound-rtp's qualityLimitationReason ("none", "cpu", "bandwidth", "other").
  const none = { below: false, reasons: [], sentence: "" };
  if (!asked || !asked.width || !sent || !sent.width) return none;
  const fmt = (x) => `${x.width}×${x.height} at ${Math.round(x.fps || 0)} fps`;
  // A frame rate measured over a second wobbles: a tenth under the profile is still the profile.
  const smaller = sent.width < asked.width || sent.height < asked.height;
  const slower = asked.fps && sent.fps && sent.fps < 0.9 * asked.fps;
  if (!smaller && !slower) return none;
  const reasons = [];
  if (camera && camera.width && (camera.width < asked.width || camera.height < asked.height ||
                                 (asked.fps && camera.fps && camera.fps < 0.9 * asked.fps))) {
    const shape = Math.abs(camera.width / camera.height - 16 / 9) > 0.05 ? ` (${aspect(camera)}, not 16:9)` : "";
    reasons.push(`the camera gives only ${fmt(camera)}${shape}: choose another camera, or check its settings`);
  }
  if (limitation === "cpu") reasons.push("this computer is too busy to encode more (CPU): close other programs");
  if (limitation === "bandwidth") reasons.push("the network cannot carry more right now (bandwidth)");
  if (limitation === "other") reasons.push("the browser limits it for a reason it does not name");
  if (!reasons.length) reasons.push("the browser names no reason (it may still be raising its rate after joining)");
  const name = (asked.name || "the profile").toUpperCase();
  return { below: true, reasons,
           sentence: `Below the profile: you send ${fmt(sent)} where ${name} asks ${fmt(asked)}, because ${reasons.join("; and ")}.` };
}

function aspect(x) {
  const r = x.width / x.height;
  return Math.abs(r - 4 / 3) < 0.05 ? "4:3" : Math.abs(r - 16 / 9) < 0.05 ? "16:9" : `${x.width}:${x.height}`;
}
