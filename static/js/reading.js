// The reading page: fill the report from a template, and ask before signing.
(function () {
  "use strict";

  var picker = document.querySelector("[data-template-picker]");
  var source = document.getElementById("report-templates");
  if (picker && source) {
    var texts = JSON.parse(source.textContent);
    var findings = document.getElementById("findings");
    var impression = document.getElementById("impression");
    var chosen = document.getElementById("report-template");
    picker.addEventListener("change", function () {
      var text = texts[picker.value];
      if (!text || !findings || findings.disabled) return;
      var dirty = findings.value.trim() || impression.value.trim();
      if (dirty && !window.confirm(picker.dataset.confirmReplace)) return;
      findings.value = text.findings;
      impression.value = text.impression;
      if (chosen) chosen.value = picker.value;
      findings.focus();
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-confirm-button]") : null;
    if (button && !window.confirm(button.getAttribute("data-confirm-button"))) {
      event.preventDefault();
    }
  });
})();
