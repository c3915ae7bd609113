// The campaign form shows, under "What members get", only the fields the chosen kind
// uses (bonus points for a bonus, the multiplier for a multiplier, and so on), and
// hides the section when the kind uses none. Without JS every field shows, each help
// text naming its kind; hidden fields keep their values and are saved as they are.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var data = document.getElementById("campaign-kind-fields");
    if (!data) { return; }
    var config = JSON.parse(data.textContent);
    var select = document.getElementById("id_kind");
    function rowOf(name) { return document.querySelector(".form-row.field-" + name); }
    function apply() {
      var kind = select ? select.value : config.kind;
      var shown = config.by_kind[kind];
      if (!shown) { shown = config.fields; }  // no kind chosen yet: show everything
      var fieldsets = [];
      config.fields.forEach(function (name) {
        var row = rowOf(name);
        if (!row) { return; }
        row.hidden = shown.indexOf(name) === -1;
        var fieldset = row.closest("fieldset");
        if (fieldset && fieldsets.indexOf(fieldset) === -1) { fieldsets.push(fieldset); }
      });
      fieldsets.forEach(function (fieldset) {
        fieldset.hidden = !fieldset.querySelector(".form-row:not([hidden])");
      });
    }
    if (select) { select.addEventListener("change", apply); }
    apply();
  });
})();
