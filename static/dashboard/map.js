// The map's animation. Each event (an activity row, pushed by the server as an <li> of
// #map-events, or a step of a replayed trace) lights the components it touches, in order, and
// runs a pulse along the arrow it travelled. Which arrow comes from the server's one mapping
// table (dashboard/diagram.py FLOW, sent as #map-flow). Every lighting is logged in order in
// #map-lit-log (data-component, data-seq, data-at = Date.now()) so tests and benches can read it.
(function () {
  "use strict";
  var diagram = document.getElementById("map-diagram");
  if (!diagram) { return; }
  var PULSE_MS = 700;        // one pulse along an arrow at normal speed
  var LIT_MS = 1100;         // how long a component stays lit
  var LIVE_GAP_MS = 400;     // live: a long quiet spell is not replayed as a wait
  var REPLAY_GAP_MS = 5000;  // a trace: its real gaps, up to 5 s each
  var SLOW = 0.25;           // slow motion: a quarter of the speed
  var SLOW_WINDOW_MS = 10000, SLOW_EVENTS = 30, KEEP_EVENTS = 60, KEEP_LIT = 300;

  var flow = JSON.parse(document.getElementById("map-flow").textContent);
  var rows = flow.rows.map(function (r) {
    return { component: r[0], action: new RegExp(r[1]), source: r[2], target: r[3], what: r[4] };
  });
  var list = document.getElementById("map-events");
  var litLog = document.getElementById("map-lit-log");
  var nowLine = document.getElementById("map-now");
  var modeLine = document.getElementById("map-mode");
  var pauseButton = document.getElementById("map-pause");
  var slowButton = document.getElementById("map-slow");
  var replayButton = document.getElementById("map-replay");
  var reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var state = {
    paused: false, slow: false, replay: null, held: [], queue: [], timer: null,
    lastAt: null, lastPlayed: 0, litSeq: 0, trace: null
  };

  // The same matching as diagram.travel(): the first row of FLOW that matches wins.
  function travel(component, action, refused) {
    if (component === "frontend" && refused) { action = "refused"; }
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].component === component && rows[i].action.test(action || "")) {
        return { source: rows[i].source, target: rows[i].target, what: rows[i].what };
      }
    }
    return { source: flow.nodes[component] ? component : null, target: null, what: action || "" };
  }

  function litOrder(source, target) {
    if (!source) { return []; }
    return target && target !== source ? [source, target] : [source];
  }

  function fromItem(li) {
    var d = li.dataset;
    return {
      seq: d.seq, at: Number(d.at), source: d.source, target: d.target || null,
      lit: (d.lit || "").split(" ").filter(Boolean), refused: li.classList.contains("refused"),
      object: d.object || "", text: li.textContent, cap: LIVE_GAP_MS
    };
  }

  // Slow motion's replay always runs at ¼; a trace or live events only while slow motion is on.
  function speed(event) { return event.replay === "slow" || state.slow ? SLOW : 1; }

  function light(component, event, rate) {
    var node = diagram.querySelector('.node[data-component="' + component + '"]');
    state.litSeq += 1;
    if (node) {
      node.classList.add("lit");
      node.dataset.litSeq = String(state.litSeq);
      clearTimeout(node.litTimer);
      node.litTimer = setTimeout(function () { node.classList.remove("lit"); }, LIT_MS / rate);
    }
    var entry = document.createElement("li");
    entry.dataset.component = component;
    entry.dataset.seq = String(state.litSeq);
    entry.dataset.at = String(Date.now());
    entry.dataset.event = String(event.seq);
    if (event.replay) { entry.dataset.replay = event.replay; }
    litLog.appendChild(entry);
    while (litLog.children.length > KEEP_LIT) { litLog.removeChild(litLog.firstElementChild); }
  }

  function pulse(event, rate) {
    var ends = [event.source, event.target].sort();
    var arrow = document.getElementById("arrow-" + ends.join("--"));
    if (!arrow) { return; }
    var d = arrow.dataset;
    var forward = d.a === event.source;
    var x1 = Number(forward ? d.x1 : d.x2), y1 = Number(forward ? d.y1 : d.y2);
    var x2 = Number(forward ? d.x2 : d.x1), y2 = Number(forward ? d.y2 : d.y1);
    var duration = PULSE_MS / rate;
    arrow.classList.add("active");
    arrow.pulses = (arrow.pulses || 0) + 1;
    function done() {
      arrow.pulses -= 1;
      if (!arrow.pulses) { arrow.classList.remove("active"); }
    }
    if (reducedMotion) { setTimeout(done, duration); return; }
    // An HTML dot moved by a transform: the compositor animates it, no layout or SVG repaint per frame.
    var width = Number(diagram.dataset.width), height = Number(diagram.dataset.height);
    var dot = document.createElement("span");
    dot.className = "pulse" + (event.refused ? " refused" : "");
    dot.style.left = (x1 / width * 100) + "%";
    dot.style.top = (y1 / height * 100) + "%";
    diagram.appendChild(dot);
    var dx = (x2 - x1) / width * diagram.clientWidth, dy = (y2 - y1) / height * diagram.clientHeight;
    var motion = dot.animate(
      [{ transform: "translate(-50%, -50%)" }, { transform: "translate(calc(" + dx + "px - 50%), calc(" + dy + "px - 50%))" }],
      { duration: duration, easing: "linear" });
    motion.onfinish = motion.oncancel = function () { dot.remove(); done(); };
  }

  function lightChip(event, rate) {
    if (!event.object) { return; }
    var chip = diagram.querySelector('.mini-chip[data-task^="' + CSS.escape(event.object) + '"]');
    if (chip) {
      chip.classList.add("lit");
      setTimeout(function () { chip.classList.remove("lit"); }, LIT_MS / rate);
    }
  }

  function play(event) {
    var rate = speed(event);
    event.lit.forEach(function (component) { light(component, event, rate); });
    if (event.target && event.target !== event.source) { pulse(event, rate); }
    lightChip(event, rate);
    nowLine.textContent = (event.replay ? "Replay: " : "Last: ") + event.text;
  }

  // Events play in order, spaced as they happened (each gap capped), never faster than real
  // time and never behind it when they arrive late.
  function pump() {
    if (state.timer || state.paused) { return; }
    while (state.queue.length) {
      var event = state.queue[0];
      var t = performance.now();
      if (state.lastAt !== null) {
        var gap = Math.min(Math.max(event.at - state.lastAt, 0), event.cap) / speed(event);
        var wait = state.lastPlayed + gap - t;
        if (wait > 1) {
          state.timer = setTimeout(function () { state.timer = null; pump(); }, wait);
          return;
        }
      }
      state.queue.shift();
      state.lastAt = event.at;
      state.lastPlayed = t;
      play(event);
    }
    if (state.replay) {
      var finished = state.replay;
      setTimeout(function () { if (state.replay === finished && !state.queue.length) { endReplay(); } }, PULSE_MS / SLOW);
    }
    showMode();
  }

  function enqueue(events, fresh) {
    if (fresh) { state.lastAt = null; }
    state.queue = state.queue.concat(events);
    pump();
  }

  // Live updates held while paused or replaying: the pushed HTML waits, then is swapped in order.
  function holding() { return state.paused || state.replay !== null; }

  function release() {
    var held = state.held;
    state.held = [];
    held.forEach(function (html) { window.htmx.swap(document.body, html, { swapStyle: "none" }); });
  }

  document.body.addEventListener("htmx:wsBeforeMessage", function (evt) {
    if (holding()) {
      state.held.push(evt.detail.message);
      evt.preventDefault();
      showMode();
    }
  });

  new MutationObserver(function (records) {
    var fresh = [];
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) {
        if (node.nodeType === 1 && node.tagName === "LI") { fresh.push(fromItem(node)); }
      });
    });
    while (list.children.length > KEEP_EVENTS) { list.removeChild(list.firstElementChild); }
    if (fresh.length) { enqueue(fresh, false); }
  }).observe(list, { childList: true });

  function showMode() {
    var text = "";
    if (state.paused) {
      text = "Paused" + (state.held.length ? ": " + state.held.length + " update(s) waiting" : "");
    } else if (state.replay === "trace") {
      text = "Replaying trace " + state.trace + (state.slow ? " at ¼ speed" : "");
    } else if (state.replay === "slow") {
      text = "Slow motion: replaying the last events at ¼ speed";
    } else if (state.slow) {
      text = "Slow motion: live events at ¼ speed" + (state.queue.length ? ", " + state.queue.length + " waiting" : "");
    }
    modeLine.textContent = text;
  }

  function startReplay(kind, events) {
    clearTimeout(state.timer);
    state.timer = null;
    state.replay = kind;
    state.queue = [];
    enqueue(events, true);
    showMode();
  }

  function endReplay() {
    state.replay = null;
    state.lastAt = null;
    release();
    showMode();
  }

  function recentEvents() {
    var items = Array.prototype.slice.call(list.children);
    if (!items.length) { return []; }
    var newest = Number(items[items.length - 1].dataset.at);
    return items.map(fromItem).filter(function (e) { return e.at >= newest - SLOW_WINDOW_MS; })
      .slice(-SLOW_EVENTS).map(function (e) { e.replay = "slow"; return e; });
  }

  pauseButton.addEventListener("click", function () {
    state.paused = !state.paused;
    pauseButton.setAttribute("aria-pressed", String(state.paused));
    pauseButton.textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) {
      if (!state.replay) { release(); }
      pump();
    }
    showMode();
  });

  slowButton.addEventListener("click", function () {
    state.slow = !state.slow;
    slowButton.setAttribute("aria-pressed", String(state.slow));
    if (state.slow && !state.replay) {
      var events = recentEvents();
      if (events.length) { startReplay("slow", events); }
    }
    showMode();
  });

  // A trace (GET /traces/<id>.json) played at its steps' relative times.
  function fromStep(step, index) {
    var t = travel(step.component, step.action, false);
    var node = flow.nodes[t.source];
    var text = (node ? node.fargate : step.component) + (step.kubernetes ? " (" + step.kubernetes + ")" : "") +
      ": " + step.action + (step.message ? " — " + step.message : "");
    return {
      seq: "trace-" + index, at: Number(step.start_ms) || 0, source: t.source, target: t.target,
      lit: litOrder(t.source, t.target), refused: false, object: "", text: text, cap: REPLAY_GAP_MS,
      replay: "trace"
    };
  }

  function replayTrace(id) {
    state.trace = id;
    modeLine.textContent = "Loading trace " + id + "…";
    fetch("/traces/" + encodeURIComponent(id) + ".json", { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("the lab answers " + response.status); }
        return response.json();
      })
      .then(function (trace) {
        var steps = (trace.steps || []).slice().sort(function (a, b) { return a.start_ms - b.start_ms; });
        state.traceEvents = steps.map(fromStep);
        if (replayButton) { replayButton.hidden = false; }
        startReplay("trace", state.traceEvents.slice());
      })
      .catch(function (error) {
        modeLine.textContent = "Trace " + id + " cannot be replayed: " + error.message;
      });
  }

  if (replayButton) {
    replayButton.addEventListener("click", function () {
      if (state.traceEvents) { startReplay("trace", state.traceEvents.slice()); }
    });
  }
  if (diagram.dataset.replay) { replayTrace(diagram.dataset.replay); }
  window.fargateMap = { travel: travel, state: state };
})();
