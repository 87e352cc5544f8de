// The task page's terminal (ECS Exec ↔ kubectl exec -it): xterm.js over the task's exec WebSocket.
// Output arrives as binary frames; keystrokes and the terminal's size go as JSON text frames.
(function () {
  function open(box) {
    var term = new window.Terminal({ rows: 24, cols: 100, convertEol: false, cursorBlink: true });
    var status = box.querySelector(".exec-status");
    term.open(box.querySelector(".exec-screen"));
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + box.dataset.execUrl);
    socket.binaryType = "arraybuffer";
    socket.onopen = function () {
      status.textContent = "connected: a shell in container " + box.dataset.container;
      socket.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
      term.focus();
    };
    socket.onmessage = function (event) {
      if (typeof event.data !== "string") { term.write(new Uint8Array(event.data)); return; }
      var message = JSON.parse(event.data);
      if (message.type === "refused") status.textContent = "refused: " + message.message;
      if (message.type === "exit") status.textContent = "the shell exited";
    };
    socket.onclose = function (event) {
      if (!/refused|exited/.test(status.textContent)) status.textContent = "disconnected (" + event.code + ")";
    };
    term.onData(function (data) {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "input", data: data }));
    });
    box.terminal = term;
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-exec-url]").forEach(function (box) {
      box.querySelector(".exec-open").addEventListener("click", function (event) {
        event.target.disabled = true;
        open(box);
      });
    });
  });
})();
