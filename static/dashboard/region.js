// The region selector in the top bar: choosing a region submits its form (the session keeps it,
// and the page comes back showing that region's objects). Without scripts, its button does.
(function () {
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-region-select]");
    if (select) { select.form.requestSubmit(); }
  });
})();
