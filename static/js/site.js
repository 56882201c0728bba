// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // Ask before destructive POSTs (revoking a role, rotating a token).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Copy a token to the clipboard; fall back to selecting it (plain HTTP has no clipboard API).
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(target.textContent.trim());
    } else {
      try { document.execCommand("copy"); } catch (e) { /* selected; the user copies */ }
    }
  });

  // Adding an existing account needs only the username and the role.
  var form = document.getElementById("member-add-form");
  if (form) {
    var sync = function () {
      var checked = form.querySelector("input[name=account]:checked");
      var existing = checked && checked.value === "existing";
      ["full_name", "password"].forEach(function (name) {
        var wrapper = form.querySelector('[data-field="' + name + '"]');
        if (wrapper) wrapper.hidden = existing;
      });
    };
    form.addEventListener("change", sync);
    sync();
  }
})();
