// The dashboard's few behaviours in the browser: the WebSocket's state, the theme toggle, and
// the task tables' hide-stopped filter. Updates arrive by push only, so say when they cannot.
(function () {
  function show(state, text) {
    var badge = document.getElementById("live-status");
    if (badge) { badge.dataset.state = state; badge.textContent = text; }
  }
  // The badge tells the page's own socket, not the announcements' beside it.
  function pages(handler) {
    return function (event) {
      var target = event.target instanceof Element ? event.target : null;
      if (!(target && target.closest("[data-announcements]"))) handler();
    };
  }
  document.addEventListener("htmx:wsOpen", pages(function () { show("open", "live"); }));
  document.addEventListener("htmx:wsClose", pages(function () { show("closed", "reconnecting…"); }));
  document.addEventListener("htmx:wsError", pages(function () { show("closed", "reconnecting…"); }));

  // Local storage may be refused (a private window's policy): the page then simply forgets.
  function remembered(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function remember(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* not remembered, still applied */ }
  }

  // Theme: the system's prefers-color-scheme until the toggle picks one (then remembered).
  var THEME = "fargate-lab:theme";
  function currentTheme() {
    var chosen = document.documentElement.dataset.theme;
    if (chosen) return chosen;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function showTheme() {
    var dark = currentTheme() === "dark";
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(dark));
      button.textContent = dark ? "Light theme" : "Dark theme";
    });
  }

  // Task tables: stopped tasks hidden unless shown; the count of hidden ones follows each push.
  var SHOW_STOPPED = "fargate-lab:show-stopped";
  function showFilters() {
    var shown = remembered(SHOW_STOPPED) === "1";
    document.querySelectorAll("[data-task-filter]").forEach(function (section) {
      section.classList.toggle("hide-stopped", !shown);
      var stopped = section.querySelectorAll('tr[data-status="STOPPED"]').length;
      var note = section.querySelector("[data-stopped-note]");
      var button = section.querySelector("[data-toggle-stopped]");
      if (note) note.textContent = shown ? "" : stopped + (stopped === 1 ? " stopped task hidden." : " stopped tasks hidden.");
      if (button) {
        button.setAttribute("aria-pressed", String(shown));
        button.textContent = shown ? "Hide stopped tasks" : "Show stopped tasks";
      }
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (target && target.closest("[data-theme-toggle]")) {
      var theme = currentTheme() === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = theme;
      remember(THEME, theme);
      showTheme();
    } else if (target && target.closest("[data-toggle-stopped]")) {
      remember(SHOW_STOPPED, remembered(SHOW_STOPPED) === "1" ? "0" : "1");
      showFilters();
    }
  });
  document.addEventListener("DOMContentLoaded", function () { showTheme(); showFilters(); });
  document.addEventListener("htmx:wsAfterMessage", showFilters);
})();
