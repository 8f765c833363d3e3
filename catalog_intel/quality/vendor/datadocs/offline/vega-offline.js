/* catalog-intel offline Data Docs: stand-in for vega / vega-lite / vega-embed, which are not
   bundled (they only draw charts, e.g. profiling pages or KL-divergence expectations).
   Defines vegaEmbed() so the page's inline chart scripts do not throw; each chart
   placeholder gets a short note instead. */
(function (w) {
  if (typeof w.vegaEmbed === "function") { return; }
  w.vegaEmbed = function (target) {
    var el = typeof target === "string" ? document.querySelector(target) : target;
    if (el) {
      var note = document.createElement("div");
      note.className = "alert alert-secondary small mb-0 catalog-intel-chart-offline";
      note.textContent = "Chart not shown: the offline Data Docs do not bundle the Vega charting library.";
      el.appendChild(note);
    }
    return Promise.resolve({ view: null, spec: null });
  };
})(window);
