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

function status(text) { $("status").textContent = text; }
function notice(text) { $("notice").hidden = !text; $("notice").textContent = text || ""; }

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

async function join(useCamera, mode = "meeting") {
  stream = useCamera ? await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } })
                     : patternStream();
  $("self").srcObject = stream;
  wanted = { mode };
  start();
  $("leave").disabled = false;
  timer = setInterval(figures, 1000);
}

function start() {
  retry = null;
  last = null;
  pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendrecv" });
  pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendrecv" });
  pc.addTransceiver("video", { direction: "recvonly" });
  let slot = 0;
  pc.ontrack = (ev) => {
    if (ev.track.kind === "audio") { $("program_audio").srcObject = new MediaStream([ev.track]); return; }
    $("program" + (slot++ % 2)).srcObject = new MediaStream([ev.track]);
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
      status(msg.reason === "replaced" ? "replaced by another connection" : "ended by an administrator");
      notice(msg.detail);
    } else if (msg.type === "joined") {
      status(msg.mode === "echo" ? `self-test for ${msg.site}: sending to the node…` : `joined as ${msg.site}`);
      window.confctlStats.mode = msg.mode;
      await pc.setLocalDescription(await pc.createOffer());
      await waitIce();
      ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
    } else if (msg.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    } else if (msg.type === "program") {
      $("program").textContent = msg.video.filter(Boolean).join(" and ") || "nobody else yet";
    } else if (msg.type === "error") {
      status(`${msg.code}: ${msg.detail}`);
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
  let sent = 0, received = 0, lost = 0, frames = 0, rtt = null, res = "–";
  report.forEach((s) => {
    if (s.type === "outbound-rtp") sent += s.bytesSent || 0;
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
  }
  last = { t: now, sent, received };
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
  $("leave").disabled = true;
}

$("camera").addEventListener("click", () => join(true).catch((e) => status(String(e))));
$("pattern").addEventListener("click", () => join(false).catch((e) => status(String(e))));
$("selftest").addEventListener("click", () => join(false, "echo").catch((e) => status(String(e))));
$("leave").addEventListener("click", leave);
if (!token) status("this page needs the join URL your organizer sent (…/join?token=…)");
