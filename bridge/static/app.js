// refinery-mock voice page: microphone -> bridge -> service, response audio
// scheduled for gapless playback, barge-in handled on response.interrupted.
//
// Query parameters: ?ws=URL (bridge socket, default this host's /ws),
// ?uuid=ID (session uuid), ?autoconnect=1, ?autostart=1 (connect and record).
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const IN_RATE = 16000; // what the service expects from us
  const CHUNK_MS = 30; // the tutorial page's chunk size
  const LEAD_S = 0.03; // schedule the first chunk slightly ahead to avoid a click

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"), statusLabel: $("status-label"), statusHelp: $("status-help"),
    connect: $("connect"), record: $("record"), skip: $("skip"),
    textForm: $("text-form"), textInput: $("text-input"), sendText: $("send-text"),
    levelBar: $("level-bar"), levelDb: $("level-db"), vad: $("vad-indicator"),
    vadSettings: $("vad-settings"), mode: $("mode"), sessionInfo: $("session-info"),
    transcript: $("transcript"), metrics: $("metrics").tBodies[0], log: $("event-log"),
  };

  // Everything a test (or a curious user in the console) may want to read.
  const page = (window.refineryPage = {
    state: "idle", help: "",
    ws: null, ctx: null, stream: null, captureNode: null, sourceNode: null,
    recording: false, sessionCreated: false, session: null, projectConfig: null,
    sources: new Set(), nextTime: 0, playing: false, outRate: 16000,
    sourcesStarted: 0, sourcesEnded: 0, chunksSent: 0,
    sent: {}, received: {}, events: [],
    turns: [], turnById: new Map(), currentTurn: null,
    ignoredResponses: new Set(), droppedAudioDeltas: 0,
    interrupted: false, lastInterrupt: null,
    level: { db: -120, floor: -60, voice: false, lastVoiceAt: null },
    errors: [],
  });

  // ---------------------------------------------------------------- state --

  const STATES = {
    idle: ["Not connected", "Click Connect to open a session."],
    connecting: ["Connecting", "Opening a session on the service through the bridge…"],
    ready: ["Ready", "Click Start recording and ask a question, or type one."],
    recording: ["Listening", "Speak now; the server ends your turn after a short pause."],
    speaking: ["AI speaking", ""],
    interrupted: ["Interrupted", "Playback stopped and the response was cancelled. Keep talking."],
    error: ["Error", ""],
    closed: ["Disconnected", "The session ended. Click Connect to start a new one."],
  };

  function setState(state, help) {
    page.state = state;
    const [label, defaultHelp] = STATES[state];
    page.help = help || defaultHelp;
    el.status.dataset.state = state;
    el.statusLabel.textContent = label;
    el.statusHelp.textContent = page.help;
    const open = page.ws && page.ws.readyState === WebSocket.OPEN && page.sessionCreated;
    el.connect.textContent = page.ws ? "Disconnect" : "Connect";
    el.record.disabled = !open;
    el.textInput.disabled = el.sendText.disabled = !open;
    el.skip.disabled = !page.playing;
  }

  // What the status shows when nothing more specific is going on.
  function settle() {
    if (page.state === "error" || page.state === "closed" || page.state === "idle") return;
    if (!page.sessionCreated) return setState("connecting");
    if (page.playing) {
      const t = page.currentTurn;
      const who = t && t.speakingRole ? ` (${t.speakingRole})` : "";
      const how = bargeIn()
        ? "Speak over it to interrupt (barge-in)."
        : "Push-to-talk project: click Stop audio to cancel.";
      return setState("speaking", `Assistant is answering${who}. ${how}`);
    }
    if (page.interrupted) return setState("interrupted");
    setState(page.recording ? "recording" : "ready");
  }

  function fail(message, what) {
    page.errors.push(message);
    setState("error", what ? `${message} — ${what}` : message);
    logLine("err", `error: ${message}`);
  }

  function bargeIn() {
    const caps = page.session && page.session.capabilities;
    if (caps && typeof caps.vad_enabled === "boolean") return caps.vad_enabled;
    return !!(page.projectConfig && page.projectConfig.barge_in);
  }

  // ------------------------------------------------------------ event log --

  function stamp() {
    const d = new Date();
    return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function logLine(cls, text) {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = `${stamp()} ${text}`;
    li.title = text;
    el.log.prepend(li);
    while (el.log.childElementCount > 300) el.log.lastElementChild.remove();
  }

  // Audio frames arrive ~33/s: count them, log only the first of a run.
  let lastLogged = "";
  function logEvent(dir, msg) {
    const type = msg.type || msg.command;
    const key = `${dir}:${type}`;
    const noisy = type === "input_audio_buffer.append" || type === "response.audio.delta" ||
      type === "input_audio_buffer.commit" || type === "PING";
    page.events.push({ t: performance.now(), dir, type, response_id: msg.response_id });
    if (noisy && key === lastLogged) return;
    lastLogged = key;
    if (type === "PING") return;
    let detail = "";
    if (msg.role) detail += ` [${msg.role}]`;
    if (type === "response.audio_transcript.done" || type === "response.text.done") detail += ` “${msg.text}”`;
    if (type === "response.done") detail += ` status=${msg.status}`;
    if (type === "response.interrupted") detail += ` audio_end_ms=${msg.audio_end_ms}`;
    if (type === "error" || type === "warning") detail += ` ${msg.message || ""}`;
    if (noisy) detail += " …";
    const cls = type === "error" ? "err" : type === "response.interrupted" ? "interrupt" : dir === "out" ? "out" : "in";
    logLine(cls, `${dir === "out" ? "→" : "←"} ${type}${detail}`);
  }

  // ------------------------------------------------------------- socket --

  function send(msg) {
    const ws = page.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    const type = msg.type || msg.command;
    page.sent[type] = (page.sent[type] || 0) + 1;
    logEvent("out", msg);
    return true;
  }

  function wsUrl() {
    if (params.get("ws")) return params.get("ws");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const uuid = params.get("uuid");
    return `${scheme}://${location.host}/ws${uuid ? `?uuid=${encodeURIComponent(uuid)}` : ""}`;
  }

  async function connect() {
    if (page.ws) return;
    try {
      await ensureAudio();
    } catch (e) {
      return fail(`audio output unavailable: ${e.message}`, "use a recent Chrome, Edge or Firefox");
    }
    page.sessionCreated = false;
    page.session = null;
    const url = wsUrl();
    const ws = new WebSocket(url);
    page.ws = ws;
    setState("connecting");
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return logLine("err", "bridge sent a non-JSON frame"); }
      page.received[msg.type] = (page.received[msg.type] || 0) + 1;
      logEvent("in", msg);
      handle(msg);
    };
    ws.onerror = () => {
      if (!page.sessionCreated && page.state !== "error") {
        fail(`cannot reach the bridge at ${url}`, "is `make run-stack` (or `python -m bridge`) running?");
      }
    };
    ws.onclose = (ev) => {
      page.ws = null;
      page.sessionCreated = false;
      stopRecording(false);
      stopAllAudio();
      if (page.state !== "error") setState("closed", ev.reason ? `Closed: ${ev.reason}. Click Connect to start again.` : undefined);
      else setState("error", page.help);
      logLine("in", `socket closed (code ${ev.code})`);
    };
  }

  function disconnect() {
    stopRecording(true);
    stopAllAudio();
    if (page.ws) page.ws.close(1000, "user disconnected");
  }

  // ------------------------------------------------------------ messages --

  function handle(msg) {
    switch (msg.type) {
      case "bridge.session":
        page.projectConfig = msg.project_config || null;
        renderSessionInfo(msg);
        renderVad();
        break;
      case "session.created":
        page.sessionCreated = true;
        page.session = msg;
        page.outRate = outputRate(msg.session) || 16000;
        renderSessionInfo(msg);
        renderVad();
        settle();
        if (params.get("autostart") === "1" && !page.recording) startRecording();
        break;
      case "recording_started":
      case "recording_stopped":
        break;
      case "response.audio_transcript.delta":
        userPartial(msg.text ?? msg.delta ?? "");
        break;
      case "response.audio_transcript.done":
        userFinal(msg.text ?? "");
        break;
      case "response.created":
        newTurn(msg.response_id);
        break;
      case "response.text.delta":
        agentText(msg, msg.text ?? msg.delta ?? msg.content ?? "", false);
        break;
      case "response.text.done":
        agentText(msg, msg.text ?? "", true);
        break;
      case "response.audio.delta":
        onAudio(msg);
        break;
      case "response.audio.done":
        break;
      case "response.done": {
        const t = turnFor(msg.response_id);
        if (t) { t.status = msg.status || "completed"; t.doneAt = performance.now(); renderMetrics(); }
        break;
      }
      case "response.interrupted":
        onInterrupted(msg);
        break;
      case "warning":
        break;
      case "error":
        if (msg.fatal === false) logLine("err", `bridge: ${msg.message}`);
        else fail(msg.message || (msg.error_detail && msg.error_detail.message) || "the service reported an error",
          "fix the cause above, then click Connect again");
        break;
      default:
        break;
    }
  }

  function outputRate(session) {
    if (!session || typeof session !== "object") return null;
    const cands = [
      session.output_sample_rate, session.output_audio_sample_rate,
      session.audio && session.audio.output_sample_rate,
      session.audio && session.audio.output && session.audio.output.sample_rate,
      session.output_audio_format && session.output_audio_format.sample_rate,
    ];
    for (const c of cands) if (typeof c === "number" && c >= 8000 && c <= 96000) return c;
    return null;
  }

  // --------------------------------------------------------- transcript --

  let userBubble = null; // the user's utterance being recognised

  function bubble(kind, who) {
    const div = document.createElement("div");
    div.className = `turn ${kind}`;
    const w = document.createElement("div");
    w.className = "who";
    w.textContent = who;
    const t = document.createElement("div");
    t.className = "text";
    div.append(w, t);
    el.transcript.append(div);
    el.transcript.scrollTop = el.transcript.scrollHeight;
    return div;
  }

  function userPartial(text) {
    if (!userBubble) {
      userBubble = bubble("user partial", "You");
      userBubble.dataset.text = "";
    }
    const cur = userBubble.dataset.text;
    // Servers send either growing hypotheses or increments; handle both.
    const next = text.startsWith(cur) ? text : (cur ? `${cur} ${text.trim()}` : text);
    userBubble.dataset.text = next;
    userBubble.querySelector(".text").textContent = next;
  }

  function userFinal(text) {
    if (!userBubble) userBubble = bubble("user", "You");
    userBubble.classList.remove("partial");
    userBubble.dataset.text = text;
    userBubble.dataset.final = "true";
    userBubble.querySelector(".text").textContent = text;
    page.lastUserText = text;
    userBubble = null;
  }

  function newTurn(responseId) {
    const now = performance.now();
    const lv = page.level;
    // End of speech: the last chunk our level detector called voice since the
    // previous response began (older voice belongs to an earlier turn); a
    // typed query counts from its send.
    const prev = page.turns.length ? page.turns[page.turns.length - 1].createdAt : -Infinity;
    const voiceEnd = lv.lastVoiceAt !== null && lv.lastVoiceAt > prev ? lv.lastVoiceAt : null;
    const typedEnd = page.lastTypedAt && page.lastTypedAt > prev ? page.lastTypedAt : null;
    const speechEnd = typedEnd !== null && (voiceEnd === null || typedEnd > voiceEnd) ? typedEnd : voiceEnd;
    const turn = {
      n: page.turns.length + 1, responseId: responseId || `local-${page.turns.length + 1}`,
      userText: page.lastUserText || "", createdAt: now, speechEndAt: speechEnd,
      firstAudioAt: null, status: "active", agents: {}, speakingRole: null,
      interruptAt: null, silenceAt: null, audioChunks: 0,
    };
    page.turns.push(turn);
    page.turnById.set(turn.responseId, turn);
    page.currentTurn = turn;
    page.interrupted = false;
    renderMetrics();
    settle();
  }

  function turnFor(responseId) {
    if (responseId && page.turnById.has(responseId)) return page.turnById.get(responseId);
    return page.currentTurn;
  }

  function agentText(msg, text, done) {
    let turn = turnFor(msg.response_id);
    if (!turn) { newTurn(msg.response_id); turn = page.currentTurn; }
    const role = msg.role || "Assistant";
    let a = turn.agents[role];
    if (!a) {
      a = turn.agents[role] = { text: "", el: bubble("agent", role) };
      a.el.dataset.role = role;
      a.el.dataset.responseId = turn.responseId;
    }
    a.text = done ? text : a.text + text;
    a.el.querySelector(".text").textContent = a.text;
    if (done) a.el.dataset.done = "true";
    el.transcript.scrollTop = el.transcript.scrollHeight;
  }

  // ------------------------------------------------------------ playback --

  async function ensureAudio() {
    if (!page.ctx) {
      page.ctx = new AudioContext();
      await page.ctx.audioWorklet.addModule("/static/capture-worklet.js");
    }
    if (page.ctx.state !== "running") await page.ctx.resume();
  }

  function b64ToInt16(b64) {
    const bin = atob(b64);
    const n = bin.length >> 1;
    const out = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      const lo = bin.charCodeAt(2 * i), hi = bin.charCodeAt(2 * i + 1);
      out[i] = (hi << 8) | lo; // little-endian; the shift wraps to a signed 16-bit value
    }
    return out;
  }

  function onAudio(msg) {
    const rid = msg.response_id;
    if (rid && page.ignoredResponses.has(rid)) { page.droppedAudioDeltas++; return; }
    const b64 = msg.delta || msg.audio;
    if (!b64 || !page.ctx) return;
    const pcm = b64ToInt16(b64);
    if (pcm.length === 0) return;
    let turn = turnFor(rid);
    if (!turn) { newTurn(rid); turn = page.currentTurn; }
    turn.audioChunks++;

    const ctx = page.ctx;
    const buf = ctx.createBuffer(1, pcm.length, page.outRate);
    const ch = buf.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(ctx.destination);
    const startAt = Math.max(page.nextTime, ctx.currentTime + LEAD_S);
    src.start(startAt);
    page.nextTime = startAt + buf.duration;
    page.sources.add(src);
    page.sourcesStarted++;
    if (msg.role && turn.lastScheduledRole !== msg.role) {
      // Audio arrives ahead of real time: highlight an agent when its audio
      // becomes audible, not when it arrives.
      turn.lastScheduledRole = msg.role;
      const role = msg.role;
      setTimeout(() => markSpeaking(turn, role), Math.max(0, (startAt - ctx.currentTime) * 1000));
    }
    if (turn.firstAudioAt === null) {
      turn.firstAudioAt = performance.now() + (startAt - ctx.currentTime) * 1000;
      renderMetrics();
    }
    src.onended = () => {
      page.sources.delete(src);
      page.sourcesEnded++;
      if (page.sources.size === 0) onPlaybackDrained();
    };
    if (!page.playing) {
      page.playing = true;
      send({ type: "playback.started" });
      settle();
    }
  }

  function markSpeaking(turn, role) {
    if (turn.interruptAt !== null || !page.playing) return;
    turn.speakingRole = role;
    for (const [r, a] of Object.entries(turn.agents)) a.el.classList.toggle("speaking", r === role);
    settle();
  }

  function onPlaybackDrained() {
    const t = page.currentTurn;
    if (t && t.interruptAt !== null && t.silenceAt === null) {
      t.silenceAt = performance.now();
      renderMetrics();
    }
    if (page.playing) {
      page.playing = false;
      page.nextTime = 0;
      if (t) for (const a of Object.values(t.agents)) a.el.classList.remove("speaking");
      send({ type: "playback.stopped" });
    }
    settle();
  }

  // Stop every scheduled source at once; their onended events then fire.
  function stopAllAudio() {
    for (const src of page.sources) {
      try { src.stop(); } catch { /* already stopped */ }
    }
    page.nextTime = 0;
    if (page.sources.size === 0 && page.playing) onPlaybackDrained();
  }

  function onInterrupted(msg) {
    const now = performance.now();
    const turn = turnFor(msg.response_id);
    if (msg.response_id) page.ignoredResponses.add(msg.response_id);
    page.interrupted = true;
    page.lastInterrupt = {
      at: now, responseId: msg.response_id, audioEndMs: msg.audio_end_ms,
      activeSources: page.sources.size, chunksAtInterrupt: turn ? turn.audioChunks : 0,
    };
    if (turn) {
      turn.interruptAt = now;
      turn.status = "interrupted";
      turn.silenceAt = page.sources.size === 0 ? now : null;
      for (const a of Object.values(turn.agents)) {
        a.el.classList.add("interrupted");
        a.el.classList.remove("speaking");
        if (!a.el.querySelector(".badge")) {
          const b = document.createElement("span");
          b.className = "badge";
          b.textContent = "interrupted";
          a.el.querySelector(".who").append(b);
        }
      }
    }
    stopAllAudio();
    send({ type: "response.cancel" });
    renderMetrics();
    settle();
  }

  function skip() {
    // The user's own "stop" key: same as an interrupt, minus the server's word.
    const t = page.currentTurn;
    if (t && t.responseId) page.ignoredResponses.add(t.responseId);
    stopAllAudio();
    send({ type: "response.cancel" });
  }

  // ---------------------------------------------------------- microphone --

  async function startRecording() {
    if (page.recording) return;
    if (!window.isSecureContext || !navigator.mediaDevices) {
      return fail("the microphone needs a secure page", `open http://localhost:${location.port || 80}/ instead of ${location.host}`);
    }
    try {
      await ensureAudio();
      page.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
    } catch (e) {
      const what = e.name === "NotAllowedError"
        ? "allow microphone access (the icon in the address bar) and click Start recording again"
        : e.name === "NotFoundError" ? "connect a microphone and try again" : "check the browser's microphone settings";
      return fail(`microphone unavailable (${e.name}: ${e.message})`, what);
    }
    const ctx = page.ctx;
    page.sourceNode = ctx.createMediaStreamSource(page.stream);
    page.captureNode = new AudioWorkletNode(ctx, "pcm16-capture", {
      processorOptions: { targetRate: IN_RATE, chunkSamples: (IN_RATE * CHUNK_MS) / 1000 },
    });
    page.captureNode.port.onmessage = (ev) => onChunk(ev.data);
    // The worklet only runs while pulled by the graph: feed it into a muted gain.
    const mute = ctx.createGain();
    mute.gain.value = 0;
    page.sourceNode.connect(page.captureNode);
    page.captureNode.connect(mute).connect(ctx.destination);
    page.recording = true;
    el.record.textContent = "Stop recording";
    el.record.dataset.on = "true";
    send({ type: "start_recording" });
    settle();
  }

  function stopRecording(tellBridge) {
    if (!page.recording) return;
    page.recording = false;
    try { page.sourceNode.disconnect(); page.captureNode.disconnect(); } catch { /* gone */ }
    if (page.stream) for (const tr of page.stream.getTracks()) tr.stop();
    page.stream = page.sourceNode = page.captureNode = null;
    el.record.textContent = "Start recording";
    el.record.dataset.on = "false";
    if (tellBridge) send({ type: "stop_recording" });
    renderLevel(-120, false);
    settle();
  }

  function bytesToB64(buf) {
    const bytes = new Uint8Array(buf);
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }

  function onChunk({ pcm, rms }) {
    if (!page.recording) return;
    // The tutorial page's frame shape: audio under data.chunk.
    if (page.ws && page.ws.readyState === WebSocket.OPEN) {
      page.ws.send(JSON.stringify({ type: "input_audio_buffer.append", data: { chunk: bytesToB64(pcm) } }));
      page.chunksSent++;
      page.sent["input_audio_buffer.append"] = page.chunksSent;
    }
    // Level / voice indicator: an adaptive noise floor, voice when well above it.
    const db = 20 * Math.log10(rms + 1e-9);
    const lv = page.level;
    lv.floor = db < lv.floor ? db : lv.floor + 0.02;
    lv.db = db;
    lv.voice = db > Math.max(lv.floor + 12, -50);
    if (lv.voice) lv.lastVoiceAt = performance.now();
    renderLevel(db, lv.voice);
  }

  function renderLevel(db, voice) {
    const pct = Math.max(0, Math.min(100, ((db + 70) / 70) * 100));
    el.levelBar.style.width = `${pct}%`;
    el.levelDb.textContent = db <= -119 ? "– dBFS" : `${db.toFixed(0)} dBFS`;
    el.vad.dataset.voice = String(voice);
    el.vad.textContent = voice ? "voice" : "quiet";
  }

  // ------------------------------------------------------------- panels --

  function fillKv(table, rows) {
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const [k, v] of rows) {
      const tr = document.createElement("tr");
      const a = document.createElement("td");
      const b = document.createElement("td");
      a.textContent = k;
      b.textContent = typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
      tr.append(a, b);
      body.append(tr);
    }
  }

  function findVad(session) {
    if (!session || typeof session !== "object") return null;
    if (session.vad && typeof session.vad === "object") return session.vad;
    for (const v of Object.values(session)) {
      if (v && typeof v === "object" && v.vad && typeof v.vad === "object") return v.vad;
    }
    return null;
  }

  function renderVad() {
    const fromSession = findVad(page.session && page.session.session);
    const vad = fromSession || (page.projectConfig && page.projectConfig.vad);
    el.mode.textContent = bargeIn() ? "· barge-in" : "· push-to-talk";
    if (!vad) {
      fillKv(el.vadSettings, [["mode", "push-to-talk (no vad block)"]]);
      return;
    }
    const rows = Object.entries(vad);
    const silence = page.projectConfig && page.projectConfig.silence_duration_ms;
    if (silence != null) rows.push(["asr.silence_duration_ms", silence]);
    rows.push(["source", fromSession ? "session.created" : "project config"]);
    fillKv(el.vadSettings, rows);
  }

  // One readable line per field: the session object nests engines and voices.
  function summarise(key, v) {
    if (v === null || typeof v !== "object") return [[key, v]];
    if (key === "voices") {
      return Object.entries(v).map(([agent, x]) => [
        `voice · ${agent}`,
        x && typeof x === "object" ? `${x.local || "?"}${x.requested ? ` (for ${x.requested})` : ""}` : x,
      ]);
    }
    if (key === "engines") {
      return Object.entries(v).map(([k, x]) => [
        `engine · ${k}`,
        x && typeof x === "object" ? (x.engine || (x.engines && x.engines.join(", ")) || JSON.stringify(x)) : x,
      ]);
    }
    if (key === "audio" || key === "turn_detection") {
      return [[key, Object.entries(v).map(([k, x]) => `${k}=${x}`).join(" · ")]];
    }
    return [[key, JSON.stringify(v)]];
  }

  function renderSessionInfo(msg) {
    if (msg.type === "bridge.session") page.bridgeSession = msg;
    const rows = [];
    const b = page.bridgeSession || {};
    if (b.project) rows.push(["project", b.project]);
    if (b.uuid) rows.push(["uuid", b.uuid]);
    if (b.server) rows.push(["service", b.server]);
    const s = page.session && page.session.session;
    if (s && typeof s === "object") {
      for (const [k, v] of Object.entries(s)) {
        if (k === "vad" || ((k === "project" || k === "uuid") && b[k] === v)) continue;
        rows.push(...summarise(k, v));
      }
    }
    if (page.projectConfig && page.projectConfig.agents) rows.push(["agents", page.projectConfig.agents.join(", ")]);
    fillKv(el.sessionInfo, rows);
  }

  function ms(a, b) {
    return a !== null && b !== null && a !== undefined && b !== undefined ? `${Math.round(b - a)} ms` : "–";
  }

  function renderMetrics() {
    el.metrics.replaceChildren();
    for (const t of page.turns) {
      t.speechToAudioMs = t.speechEndAt !== null && t.firstAudioAt !== null ? t.firstAudioAt - t.speechEndAt : null;
      t.interruptToSilenceMs = t.interruptAt !== null && t.silenceAt !== null ? t.silenceAt - t.interruptAt : null;
      const tr = document.createElement("tr");
      tr.dataset.responseId = t.responseId;
      for (const v of [t.n, t.status, ms(t.speechEndAt, t.firstAudioAt), ms(t.interruptAt, t.silenceAt)]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.append(td);
      }
      el.metrics.append(tr);
    }
  }

  // ------------------------------------------------------------- wiring --

  el.connect.addEventListener("click", () => (page.ws ? disconnect() : connect()));
  el.record.addEventListener("click", () => (page.recording ? stopRecording(true) : startRecording()));
  el.skip.addEventListener("click", skip);
  el.textForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = el.textInput.value.trim();
    if (!text) return;
    page.lastTypedAt = performance.now();
    page.lastUserText = text;
    const b = bubble("user", "You (typed)");
    b.querySelector(".text").textContent = text;
    send({ type: "input_text", text });
    el.textInput.value = "";
  });

  setState("idle");
  if (params.get("autoconnect") === "1" || params.get("autostart") === "1") connect();
})();
