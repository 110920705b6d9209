// Technician's join page: one WebRTC leg to the media node, signalled over /ws with the site's join token.
// The leg rejoins on its own when its media node goes away (the node process died, or the node tells
// it to): back through the control plane, which places it on a healthy node.
"use strict";
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token") || "";
window.confctlStats = { framesDecoded: 0, sendKbps: 0, recvKbps: 0, rejoins: 0 };
let pc = null, ws = null, timer = null, last = null;
let stream = null, wanted = null, retry = null, failures = 0;
let framesBefore = 0;  // frames decoded by earlier peer connections (each rejoin starts a new one)
let info = null, preview = null, meterTimer = null, program = { video: [], audio: null };
// Browsers give a page the camera and microphone only in a secure context (https://, or this very
// computer): a page opened over plain http:// from another computer has no navigator.mediaDevices.
const devicesAllowed = Boolean(window.isSecureContext && navigator.mediaDevices);
// The test pattern needs none of them: a canvas, an oscillator and a peer connection (measured in
// Chromium on an insecure origin: it joins, sends and receives).
const patternPossible = typeof RTCPeerConnection === "function" && typeof AudioContext === "function" &&
  typeof HTMLCanvasElement.prototype.captureStream === "function";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function status(text) { $("status").textContent = text; }
function notice(text) { $("notice").hidden = !text; $("notice").textContent = text || ""; }

function explainInsecure() {
  // In plain words, for the technician and for the IT person they forward it to.
  const secure = window.isSecureContext;
  $("insecure").replaceChildren(
    el("h2", {}, "Your camera and microphone cannot be used on this page"),
    el("p", {}, "The browser allows the camera and microphone only on a secure (https://) page. ",
       secure ? "This browser gives this page no access to them."
              : el("span", {}, "This page was opened at ", el("code", { id: "insecure_origin" }, location.origin),
                   " over plain HTTP from another computer, so the browser blocks them.")),
    el("p", {}, patternPossible
      ? "You can still join with a test pattern to see and hear the others (they see a moving pattern and hear a tone, not you)."
      : "This browser cannot join from this page at all."),
    el("p", {}, "To use your camera and microphone, ask your administrator for the https:// join link: " +
       "you can forward them this message."),
    el("p", {}, "For the administrator: serve confctl over HTTPS (", el("code", {}, "confctl serve --tls-cert … --tls-key …"),
       ", or behind the nginx front) and send this site its https:// join link."));
  $("insecure").hidden = false;
  for (const id of ["check", "cam", "mic"]) $(id).disabled = true;
}

function patternStream() {
  // A moving test pattern from a canvas, for rooms without a camera.
  const c = document.createElement("canvas");
  c.width = 640; c.height = 360;
  const g = c.getContext("2d");
  let x = 0;
  setInterval(() => {
    g.fillStyle = "#16324f"; g.fillRect(0, 0, c.width, c.height);
    g.fillStyle = "#f5b700"; g.fillRect(x, 0, 40, c.height);
    g.fillStyle = "#fff"; g.font = "32px sans-serif"; g.fillText(new Date().toLocaleTimeString(), 20, 50);
    x = (x + 8) % c.width;
  }, 33);
  const stream = c.captureStream(30);
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  const dest = ctx.createMediaStreamDestination();
  osc.connect(dest); osc.start();
  stream.addTrack(dest.stream.getAudioTracks()[0]);
  return stream;
}

function waitIce() {
  // The node takes a complete offer (no trickle): wait for gathering to finish.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => pc.addEventListener("icegatheringstatechange", () => {
    if (pc.iceGatheringState === "complete") resolve();
  }));
}

// -- before joining: what this link opens, and the devices ------------------------------------
async function loadInfo() {
  if (!token) { status("this page needs the join URL your organizer sent (…/join?token=…)"); return; }
  const r = await fetch(`/api/join-info?token=${encodeURIComponent(token)}`);
  const d = await r.json().catch(() => ({}));
  if (!r.ok) { status(d.detail || "this join link is not valid"); return; }
  info = d;
  const time = (iso) => iso.slice(0, 16).replace("T", " ");
  $("heading").textContent = `Join “${d.title}”`;
  $("title").textContent = d.title + (d.status === "cancelled" ? " (cancelled)" : "");
  $("when").textContent = `${time(d.start)} – ${time(d.end).slice(11)} (${d.start.slice(19)})`;
  $("host").textContent = d.host;
  $("me").textContent = `${d.site_name} — sending ${d.profile.name}` + (d.profile.width ? ` (${d.profile.width}×${d.profile.height}, up to ${d.profile.video_kbps} kbit/s)` : "");
  $("sites").textContent = d.sites.map((x) => x.name).join(", ");
  if (d.rtt_ms >= 300) {
    // A satellite link is slow by nature: say so, so that the pause before others answer is not taken for a fault.
    $("me").append(el("span", { id: "high_delay" }, ` · a high-delay link (about ${d.rtt_ms} ms round trip): ` +
      "expect a pause before others answer; this is normal here"));
  }
  if (d.dropped) status("an emergency consultation needs this site's link now: you can join when it is over");
  buttons();
}

// Dropped for an emergency: ask every 10 s whether it is over, and say so when this site may join again.
function untilGivenBack() {
  const poll = setInterval(async () => {
    await loadInfo();
    if (info && !info.dropped) {
      clearInterval(poll);
      notice("The emergency is over and this site's link is back: you can join again.");
    }
  }, 10000);
}

function buttons() {
  const can = info && info.status === "booked" && !info.dropped && !wanted;
  for (const id of ["camera", "selftest"]) $(id).disabled = !can || !devicesAllowed;
  $("pattern").disabled = !can || !patternPossible;
  $("leave").disabled = !wanted;
}

function cameraConstraints(aspectRatio) {
  const p = (info && info.profile) || {};
  const video = { width: { ideal: p.width || 1280 }, height: { ideal: p.height || 720 }, frameRate: { ideal: p.fps || 30 } };
  if (aspectRatio) video.aspectRatio = aspectRatio;
  if ($("cam").value) video.deviceId = { exact: $("cam").value };
  return { audio: $("mic").value ? { deviceId: { exact: $("mic").value } } : true, video };
}

async function openCamera() {
  // 16:9 first: asked only for a size, a webcam answered with its 4:3 640×480 default. A camera that
  // cannot give 16:9 (nor crop to it) refuses the exact ratio; then ask for it as ideal, then for the size alone.
  let refusal = null;
  for (const ratio of [{ exact: 16 / 9 }, { ideal: 16 / 9 }, null]) {
    try { return await navigator.mediaDevices.getUserMedia(cameraConstraints(ratio)); }
    catch (e) { if (e.name !== "OverconstrainedError" && e.name !== "NotReadableError") throw e; refusal = e; }
  }
  throw refusal;
}

async function checkDevices() {
  if (!devicesAllowed) throw new Error("this browser allows the camera and microphone only on a secure (https://) page");
  if (preview) preview.getTracks().forEach((t) => t.stop());
  preview = await openCamera();
  $("preview").srcObject = preview;
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [id, kind, track] of [["cam", "videoinput", preview.getVideoTracks()[0]], ["mic", "audioinput", preview.getAudioTracks()[0]]]) {
    const current = track && track.getSettings().deviceId;
    $(id).replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const o = document.createElement("option");
      o.value = d.deviceId; o.textContent = d.label || `${kind === "videoinput" ? "camera" : "microphone"} ${i + 1}`;
      o.selected = d.deviceId === current;
      return o;
    }));
    $(id).disabled = false;
  }
  meter(preview);
}

function meter(s) {
  // The microphone's level, from an analyser: a bar that moves when someone speaks.
  clearInterval(meterTimer);
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(s).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  meterTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    const rms = Math.sqrt(buf.reduce((a, x) => a + x * x, 0) / buf.length);
    const level = Math.min(100, Math.round(rms * 300));
    $("meter").style.width = `${level}%`;
    $("meter").dataset.level = level;
  }, 100);
}

async function join(useDevices, mode = "meeting") {
  if (useDevices) {
    if (!preview) await checkDevices();
    stream = preview;  // the devices chosen above, as previewed
  } else {
    stream = patternStream();
  }
  const v = stream.getVideoTracks()[0];
  if (v && "contentHint" in v) v.contentHint = "motion";  // a meeting: keep the frame rate, lower detail first
  $("self").srcObject = stream;
  wanted = { mode };
  buttons();
  start();
  timer = setInterval(figures, 1000);
}

// -- the program: which site each tile shows ------------------------------------------------------
function showProgram(msg) {
  program = msg;
  const names = (info && info.names) || {};
  msg.video.forEach((site, i) => {
    if (i > 1) return;
    // A slot nobody fills is hidden, never left on its last picture.
    $("tile" + i).hidden = !site;
    $("label" + i).textContent = site ? (names[site] || site) : "";
    $("tile" + i).dataset.site = site || "";
  });
  $("program").textContent = msg.video.filter(Boolean).map((s) => names[s] || s).join(" and ") || "nobody else yet";
}

function start() {
  retry = null;
  last = null;
  pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendrecv" });
  // Ask for the profile's picture and rate: the encoder otherwise starts low and climbs slowly.
  const kbps = (info && info.profile && info.profile.video_kbps) || 0;
  pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendrecv",
    sendEncodings: [kbps ? { maxBitrate: kbps * 1000, scaleResolutionDownBy: 1 } : {}] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (ev) => {
    if (ev.track.kind === "audio") { $("program_audio").srcObject = new MediaStream([ev.track]); return; }
    // The node's n-th outgoing video follows the program's n-th site.
    const slot = pc.getTransceivers().filter((t) => t.receiver.track.kind === "video").indexOf(ev.transceiver);
    $("program" + slot).srcObject = new MediaStream([ev.track]);
  };
  const mine = pc;
  pc.onconnectionstatechange = () => {
    if (pc !== mine) return;
    status(mine.connectionState);
    if (mine.connectionState === "connected") failures = 0;
    if (mine.connectionState === "failed") rejoin("the media connection failed");
  };
  connect(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
          { type: "join", token, mode: wanted.mode });
}

function rejoin(reason) {
  // Tear this leg down and join again through the control plane, a little later each time.
  if (!wanted || retry) return;
  window.confctlStats.rejoins += 1;
  notice(`${reason} — joining again…`);
  status("rejoining");
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  if (pc) { framesBefore = window.confctlStats.framesDecoded; pc.close(); pc = null; }
  // Every second for the first tries (a dead node is taken for down within 5 s, then the control
  // plane places the site elsewhere), then backing off to every 5 s.
  failures += 1;
  retry = setTimeout(start, failures <= 6 ? 1000 : Math.min(1000 * 2 ** (failures - 6), 5000));
}

function connect(url, hello) {
  const sock = ws = new WebSocket(url);
  ws.onopen = () => sock.send(JSON.stringify(hello));
  ws.onclose = () => { if (ws === sock && wanted) rejoin("the connection to the media node was lost"); };
  ws.onmessage = async (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.notice) notice(msg.notice);
    if (msg.type === "redirect") {
      // The control plane placed this session on a media node: continue there with its grant.
      sock.onclose = null;
      sock.close();
      connect(msg.url, { type: "join", grant: msg.grant });
    } else if (msg.type === "rejoin") {
      rejoin(msg.reason);
    } else if (msg.type === "ended") {
      // Replaced by another window of this site, or ended by an administrator: stop, do not rejoin
      // (two windows of one site would otherwise take the leg from each other for ever).
      leave();
      status({ replaced: "replaced by another connection", preempted: "given way to an emergency" }[msg.reason]
             || "ended by an administrator");
      notice(msg.detail);
      if (msg.reason === "preempted") untilGivenBack();
    } else if (msg.type === "layout") {
      // An emergency took (or gave back) capacity on this site's link: the node now sends what the
      // layout includes; the program message that follows hides the slots it no longer fills.
      const what = { full: "the full program again", speaker: "the speaker only", audio: "audio only" }[msg.layout] || msg.layout;
      notice(`${msg.detail.charAt(0).toUpperCase()}${msg.detail.slice(1)}. This site now receives ${what}.`);
      window.confctlStats.layout = msg.layout;
    } else if (msg.type === "joined") {
      status(msg.mode === "echo" ? `self-test for ${msg.site}: sending to the node…` : `joined as ${msg.site}`);
      window.confctlStats.mode = msg.mode;
      await pc.setLocalDescription(await pc.createOffer());
      await waitIce();
      ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
    } else if (msg.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    } else if (msg.type === "program") {
      showProgram(msg);
    } else if (msg.type === "error") {
      status(msg.detail);  // words, not the error code
      // A node's refusal (not registered yet, a grant for another node): through the control plane
      // again. The control plane's (token, session, window): said, and final.
      if (["not_ready", "invalid_grant", "wrong_node"].includes(msg.code)) rejoin(msg.detail);
      else if (msg.code !== "already_joined") wanted = null;
    }
  };
}

async function figures() {
  if (!pc) return;
  const report = await pc.getStats();
  let sent = 0, received = 0, lost = 0, frames = 0, rtt = null, res = "–", sendRes = "–", limitation = "none";
  let videoSent = 0, picture = null;
  report.forEach((s) => {
    if (s.type === "outbound-rtp") sent += s.bytesSent || 0;
    if (s.type === "outbound-rtp" && s.kind === "video") {
      videoSent += s.bytesSent || 0;
      if (s.frameWidth) {
        sendRes = `${s.frameWidth}×${s.frameHeight} at ${Math.round(s.framesPerSecond || 0)} fps`; window.confctlStats.sendWidth = s.frameWidth;
        picture = { width: s.frameWidth, height: s.frameHeight, fps: s.framesPerSecond || 0 };
      }
      limitation = s.qualityLimitationReason || "none";
    }
    if (s.type === "inbound-rtp") {
      received += s.bytesReceived || 0;
      lost += s.packetsLost || 0;
      if (s.kind === "video") {
        frames += s.framesDecoded || 0;
        if (s.frameWidth) res = `${s.frameWidth}×${s.frameHeight}`;
      }
    }
    if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
  });
  const now = performance.now();
  if (last) {
    const dt = (now - last.t) / 1000;
    window.confctlStats.sendKbps = Math.round((8 * (sent - last.sent)) / dt / 1000);
    window.confctlStats.recvKbps = Math.round((8 * (received - last.received)) / dt / 1000);
    window.confctlStats.videoKbps = Math.round((8 * (videoSent - last.videoSent)) / dt / 1000);
  }
  last = { t: now, sent, received, videoSent };
  frames += framesBefore;
  window.confctlStats.framesDecoded = frames;
  if (window.confctlStats.mode === "echo" && frames > 0) {
    status(`self-test passed: your picture reached the node and came back (${frames} frames, ` +
           `${rtt === null ? "?" : Math.round(rtt * 1000)} ms round trip)`);
  }
  $("send_kbps").textContent = window.confctlStats.sendKbps;
  $("recv_kbps").textContent = window.confctlStats.recvKbps;
  $("lost").textContent = lost;
  $("rtt").textContent = rtt === null ? "–" : Math.round(rtt * 1000);
  $("frames").textContent = frames;
  $("resolution").textContent = res;
  $("send_res").textContent = sendRes;
  window.confctlStats.limitation = limitation;
  showPicture(picture, limitation);
}

// What is sent against what the profile asks, and when below it, why in words (join_quality.js).
function showPicture(picture, limitation) {
  const p = (info && info.profile) || {};
  const track = stream && stream === preview ? stream.getVideoTracks()[0] : null;  // not the drawn test pattern
  const set = track ? track.getSettings() : {};
  const camera = set.width ? { width: set.width, height: set.height, fps: set.frameRate || 0 } : null;
  const asked = p.width ? { name: p.name, width: p.width, height: p.height, fps: p.fps } : null;
  const f = (x) => `${x.width}×${x.height} at ${Math.round(x.fps || 0)} fps`;
  $("q_asked").textContent = asked ? `${f(asked)}, up to ${p.video_kbps} kbit/s` : "–";
  $("q_camera").textContent = camera ? f(camera) : stream && !track ? "a test pattern" : "–";
  $("q_sent").textContent = picture ? `${f(picture)}, ${window.confctlStats.videoKbps ?? "…"} kbit/s` : "–";
  const verdict = pictureVerdict(asked, camera, picture, limitation);
  window.confctlStats.belowProfile = verdict.below;
  $("limitation").hidden = !verdict.below;
  $("limitation").textContent = verdict.sentence;
}

function leave() {
  wanted = null;
  if (retry) clearTimeout(retry);
  retry = null;
  if (ws) { ws.onclose = null; ws.send(JSON.stringify({ type: "leave" })); }
  if (pc) pc.close();
  pc = null;
  clearInterval(timer);
  status("left");
  for (const i of [0, 1]) $("tile" + i).hidden = true;
  buttons();
}

if (!devicesAllowed) explainInsecure();
$("check").addEventListener("click", () => checkDevices().catch((e) => status(`camera or microphone: ${e.message || e}`)));
for (const id of ["cam", "mic"]) $(id).addEventListener("change", () => checkDevices().catch((e) => status(String(e))));
$("camera").addEventListener("click", () => join(true).catch((e) => status(String(e))));
$("pattern").addEventListener("click", () => join(false).catch((e) => status(String(e))));
// The self-test sends the chosen devices (not a drawn pattern) to the node and back.
$("selftest").addEventListener("click", () => join(true, "echo").catch((e) => status(String(e))));
$("leave").addEventListener("click", leave);
loadInfo().then(() => { if (info && info.dropped) untilGivenBack(); });
