// Shows whether the page's WebSocket is open: updates arrive by push only, so say when they cannot.
(function () {
  function show(state, text) {
    var badge = document.getElementById("live-status");
    if (badge) { badge.dataset.state = state; badge.textContent = text; }
  }
  document.addEventListener("htmx:wsOpen", function () { show("open", "live"); });
  document.addEventListener("htmx:wsClose", function () { show("closed", "reconnecting…"); });
  document.addEventListener("htmx:wsError", function () { show("closed", "reconnecting…"); });
})();
