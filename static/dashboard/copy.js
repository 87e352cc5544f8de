// Copy buttons: copy the text of the element a button names (data-copy) to the clipboard.
// navigator.clipboard needs a secure context (https, or localhost); elsewhere a hidden textarea
// and execCommand("copy") do it. Delegated on the document, so pushed fragments need no setup.
(function () {
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.dataset.copy);
    var status = button.parentNode.querySelector(".copy-status");
    if (!source) { return; }
    copy(source.textContent).then(function () {
      if (status) { status.textContent = "Copied"; }
      button.dataset.copied = "true";
    }, function () {
      if (status) { status.textContent = "Select the text and press Ctrl+C"; }
      button.dataset.copied = "false";
    });
  });
})();
