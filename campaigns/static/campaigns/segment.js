// Live count of a segment while its criteria are edited: posts the form to the preview
// URL (debounced) and shows the count and sample it returns. Without JS the count is
// shown after saving.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var box = document.getElementById("segment-preview");
    var form = document.getElementById("segment_form");
    if (!box || !form) { return; }
    var body = document.getElementById("segment-preview-body");
    var count = document.getElementById("segment-count");
    var floating = document.getElementById("segment-count-float-value");
    function show(text) { count.textContent = text; if (floating) { floating.textContent = text; } }
    var timer = null;
    var seq = 0;
    function refresh() {
      var data = new FormData(form);
      data.delete("card_list");
      data.append("segment_id", box.dataset.segment || "");
      var mine = ++seq;
      show("…");
      fetch(box.dataset.url, {method: "POST", body: data, credentials: "same-origin",
                              headers: {"X-Requested-With": "XMLHttpRequest"}})
        .then(function (response) { return response.json(); })
        .then(function (result) {
          if (mine !== seq) { return; }
          if (result.errors) {
            show("?");
            var list = document.createElement("ul");
            list.className = "errorlist";
            Object.keys(result.errors).forEach(function (key) {
              var item = document.createElement("li");
              item.textContent = result.errors[key].join(" ");
              list.appendChild(item);
            });
            body.replaceChildren(list);
            return;
          }
          show(result.count.toLocaleString());
          body.innerHTML = result.html;
        })
        .catch(function () { show("?"); });
    }
    function later() { clearTimeout(timer); timer = setTimeout(refresh, 400); }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    document.getElementById("segment-count-button").addEventListener("click", refresh);
    refresh();
  });
})();
