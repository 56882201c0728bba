// The mutual-recognition (互认) panel of one study: self-contained, no library.
//
// Any page shows it with an element
//   <section data-recognition-panel data-api="/api/recognition/<StudyInstanceUID>/"></section>
// (templates: {% include "referrals/_recognition_panel.html" with study_uid=... %}) and this
// script; or, from other code: RecognitionPanel.mount(element, {api: "/api/recognition/<uid>/"}).
// Every word shown comes from the API, already in the user's language.
(function () {
  "use strict";
  if (window.RecognitionPanel) {
    window.RecognitionPanel.mountAll();
    return;
  }

  var STYLE =
    ".rp{border:1px solid #d9e0e7;border-radius:8px;padding:.6rem .8rem;margin:.5rem 0;background:#fbfcfd;font-size:.92rem}" +
    ".rp-head{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}" +
    ".rp-verdict{border-radius:999px;padding:.05rem .6rem;font-weight:600;font-size:.85rem}" +
    ".rp-verdict--yes{background:#dcfae6;color:#067647}.rp-verdict--no{background:#fdecea;color:#b42318}" +
    ".rp-verdict--own{background:#e8f3fb;color:#0c2f45}" +
    ".rp ul{margin:.3rem 0;padding-left:1.1rem}.rp-pass{color:#067647}.rp-fail{color:#b42318}" +
    ".rp-pass::marker{content:'✓ '}.rp-fail::marker{content:'✗ '}" +
    ".rp form{margin:.5rem 0 0}.rp fieldset{border:0;padding:0;margin:.3rem 0}" +
    ".rp legend{font-weight:600;padding:0}.rp label{margin-right:.8rem;display:inline-flex;gap:.25rem;align-items:center}" +
    ".rp textarea{width:100%;min-height:3rem}.rp-status{margin:.3rem 0 0}.rp-status--error{color:#b42318}" +
    ".rp-status--ok{color:#067647}.rp-decisions li{margin:.15rem 0}.rp-muted{color:#5f6b7a}";

  function addStyle() {
    if (document.getElementById("recognition-panel-style")) return;
    var style = document.createElement("style");
    style.id = "recognition-panel-style";
    style.textContent = STYLE;
    document.head.appendChild(style);
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (match, key) {
      return key in values ? values[key] : match;
    });
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function when(iso) {
    return iso ? String(iso).slice(0, 16).replace("T", " ") : "";
  }

  var counter = 0;

  function mount(root, options) {
    options = options || {};
    var api = options.api || root.getAttribute("data-api");
    if (!api) return;
    root.setAttribute("data-mounted", "1");
    root.setAttribute("data-api", api);
    if (options.referral) root.setAttribute("data-referral", options.referral);
    addStyle();
    load(root);
  }

  function load(root, status) {
    var api = root.getAttribute("data-api");
    fetch(api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404 || response.status === 403) return null;
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (state) {
        if (state === null) {
          root.hidden = true; // not a study this user may see: show nothing about it
          return;
        }
        render(root, state, status);
      })
      .catch(function () {
        root.textContent = "";
        root.appendChild(el("p", { className: "rp rp-status--error", text: root.getAttribute("data-load-failed") || "⚠" }));
      });
  }

  function render(root, state, status) {
    var labels = state.labels;
    root.setAttribute("data-load-failed", labels.load_failed);
    var evaluation = state.evaluation;
    var own = evaluation.checks.length === 1 && evaluation.checks[0].code === "own_study";
    var verdict = own
      ? el("span", { className: "rp-verdict rp-verdict--own", text: labels.own_study })
      : el("span", {
          className: "rp-verdict rp-verdict--" + (evaluation.recognizable ? "yes" : "no"),
          "data-recognizable": evaluation.recognizable ? "yes" : "no",
          text: evaluation.recognizable ? labels.recognizable : labels.not_recognizable,
        });
    var checks = el(
      "ul",
      { className: "rp-checks" },
      evaluation.checks.map(function (check) {
        return el("li", {
          className: check.passed ? "rp-pass" : "rp-fail",
          "data-check": check.code,
          text: check.message,
        });
      })
    );
    var box = el("div", { className: "rp", "data-study-uid": state.study.study_instance_uid }, [
      el("div", { className: "rp-head" }, [el("strong", { text: labels.title }), verdict]),
      own ? null : el("p", { className: "rp-summary", text: evaluation.summary }),
      own ? null : el("details", { open: "" }, [el("summary", { text: labels.why }), checks]),
      el("p", { className: "rp-quality rp-muted", "data-quality": state.quality.status, text: state.quality.label }),
      state.can_decide ? form(root, state) : el("p", { className: "rp-muted", text: labels.cannot_decide }),
      decisions(state),
    ]);
    root.textContent = "";
    root.appendChild(box);
    if (status) {
      var line = root.querySelector(".rp-status");
      if (line) {
        line.textContent = status.text;
        line.className = "rp-status rp-status--" + status.kind;
      }
    }
  }

  function decisions(state) {
    var labels = state.labels;
    var items = state.decisions.map(function (d) {
      var parts = [d.decision_label];
      if (d.reason_labels.length) parts.push(d.reason_labels.join("、"));
      if (d.other_text) parts.push(d.other_text);
      if (d.saving_yuan !== null) parts.push(fill(labels.saving, { amount: d.saving_yuan }));
      if (d.repeat_study) parts.push(fill(labels.repeat, { uid: d.repeat_study }));
      parts.push(fill(labels.by, { who: d.decided_by, institution: d.institution.name, when: when(d.decided_at) }));
      return el("li", { "data-decision": d.decision, text: parts.join(" · ") });
    });
    return el("div", { className: "rp-history" }, [
      el("h4", { text: labels.decisions }),
      items.length ? el("ul", { className: "rp-decisions" }, items) : el("p", { className: "rp-muted", text: labels.no_decisions }),
    ]);
  }

  function form(root, state) {
    var labels = state.labels;
    var id = "rp" + ++counter;
    var decisionBox = el(
      "fieldset",
      { className: "rp-decision" },
      [el("legend", { text: labels.decide })].concat(
        state.decision_choices.map(function (choice) {
          var input = el("input", { type: "radio", name: id + "-decision", value: choice.code, "data-testid": "decision-" + choice.code });
          if (choice.code === "recognized" && !state.evaluation.recognizable) input.disabled = true;
          return el("label", {}, [input, document.createTextNode(choice.code === "recognized" ? labels.recognized : labels.not_recognized)]);
        })
      )
    );
    var reasonBox = el(
      "fieldset",
      { className: "rp-reasons", hidden: "" },
      [el("legend", { text: labels.reasons })].concat(
        state.reasons.map(function (reason) {
          return el("label", {}, [
            el("input", { type: "checkbox", name: "reasons", value: reason.code, "data-testid": "reason-" + reason.code }),
            document.createTextNode(reason.label),
          ]);
        })
      )
    );
    var otherLabel = el("label", { for: id + "-other", text: labels.other_text });
    var other = el("textarea", { id: id + "-other", name: "other_text", maxlength: String(state.other_text_max), "data-testid": "other-text" });
    var otherBox = el("div", { className: "rp-other", hidden: "" }, [otherLabel, other]);
    var save = el("button", { type: "submit", className: "btn btn-small btn-primary", "data-testid": "save-decision", text: labels.save });
    var status = el("p", { className: "rp-status", role: "status" });
    var node = el("form", { className: "rp-form", novalidate: "" }, [decisionBox, reasonBox, otherBox, save, status]);

    function sync() {
      var chosen = node.querySelector("input[type=radio]:checked");
      var against = chosen && chosen.value === "not_recognized";
      reasonBox.hidden = !against;
      var otherTicked = node.querySelector("input[value=other]:checked");
      otherBox.hidden = !(against && otherTicked);
    }
    node.addEventListener("change", sync);
    node.addEventListener("submit", function (event) {
      event.preventDefault();
      var chosen = node.querySelector("input[type=radio]:checked");
      if (!chosen) return;
      var payload = { decision: chosen.value, reasons: [], other_text: "" };
      if (chosen.value === "not_recognized") {
        node.querySelectorAll("input[name=reasons]:checked").forEach(function (box) {
          payload.reasons.push(box.value);
        });
        if (!otherBox.hidden) payload.other_text = other.value;
      }
      if (state.institution) payload.institution = state.institution.uuid;
      var referral = root.getAttribute("data-referral");
      if (referral) payload.referral = referral;
      save.disabled = true;
      fetch(root.getAttribute("data-api"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(payload),
      })
        .then(function (response) {
          return response.json().then(function (body) {
            return { ok: response.ok, body: body };
          });
        })
        .then(function (result) {
          if (result.ok) {
            load(root, { kind: "ok", text: labels.saved });
            return;
          }
          save.disabled = false;
          status.className = "rp-status rp-status--error";
          status.textContent = labels.failed + " " + describe(result.body);
        })
        .catch(function () {
          save.disabled = false;
          status.className = "rp-status rp-status--error";
          status.textContent = labels.failed;
        });
    });
    return node;
  }

  function describe(body) {
    if (!body || typeof body !== "object") return "";
    if (body.detail) return String(body.detail);
    return Object.keys(body)
      .map(function (key) {
        var value = body[key];
        return Array.isArray(value) ? value.join(" ") : String(value);
      })
      .join(" ");
  }

  function mountAll() {
    document.querySelectorAll("[data-recognition-panel]:not([data-mounted])").forEach(function (root) {
      mount(root);
    });
  }

  window.RecognitionPanel = { mount: mount, mountAll: mountAll, reload: load };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
