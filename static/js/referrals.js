// Referral pages: the create form follows the direction; the timeline refreshes itself.
// Every page works without this script (the server checks everything again).
(function () {
  "use strict";

  // --- the create form: only the targets of the chosen direction, and the fields it needs ---
  var form = document.getElementById("referral-form");
  if (form) {
    var select = form.querySelector("select[name=to_institution]");
    var field = function (name) {
      return form.querySelector('[data-field="' + name + '"]');
    };
    var sync = function () {
      var checked = form.querySelector("input[name=direction]:checked");
      var direction = checked ? checked.value : "up";
      if (select) {
        Array.prototype.forEach.call(select.querySelectorAll("optgroup"), function (group) {
          var options = group.querySelectorAll("option");
          var matches = options.length && options[0].getAttribute("data-direction") === direction;
          group.hidden = !matches;
          Array.prototype.forEach.call(options, function (option) {
            option.disabled = !matches;
          });
        });
        var selected = select.options[select.selectedIndex];
        if (selected && selected.disabled) select.value = "";
      }
      var chosen = select && select.options[select.selectedIndex];
      var needsSkip = !!(chosen && chosen.getAttribute("data-needs-skip"));
      var down = direction === "down";
      if (field("skip_reason")) field("skip_reason").hidden = !(needsSkip && !down);
      ["treatment_summary", "follow_up_plan"].forEach(function (name) {
        if (field(name)) field(name).hidden = !down;
      });
    };
    form.addEventListener("change", sync);
    sync();
  }

  // --- the timeline: poll the small events endpoint every 10 s --------------------------
  var timeline = document.getElementById("timeline");
  if (!timeline || !window.fetch) return;
  var url = timeline.getAttribute("data-events-url");
  var shownState = timeline.getAttribute("data-state");

  var when = function (iso) {
    return String(iso).slice(0, 16).replace("T", " ");
  };

  var render = function (data) {
    var items = data.events.map(function (event) {
      var li = document.createElement("li");
      li.className = "rf-event rf-event--" + event.kind;
      var time = document.createElement("time");
      time.setAttribute("datetime", event.at);
      time.textContent = when(event.at);
      var what = document.createElement("span");
      what.className = "rf-event__what";
      what.textContent = event.kind_label;
      var who = document.createElement("span");
      who.className = "rf-event__who";
      who.textContent = event.actor;
      li.appendChild(time);
      li.appendChild(what);
      li.appendChild(who);
      if (event.note) {
        var note = document.createElement("span");
        note.className = "rf-event__note";
        note.textContent = event.note;
        li.appendChild(note);
      }
      return li;
    });
    timeline.textContent = "";
    items.forEach(function (li) {
      timeline.appendChild(li);
    });
    if (data.state !== shownState) {
      var badge = document.querySelector("#referral-state .rf-state");
      if (badge) {
        badge.textContent = data.state_label;
        badge.className = "rf-state rf-state--" + data.state;
        badge.setAttribute("data-state", data.state);
      }
      var notice = document.getElementById("referral-changed");
      if (notice) notice.hidden = false; // the actions shown may no longer apply
      shownState = data.state;
      timeline.setAttribute("data-state", data.state);
    }
  };

  var refresh = function () {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) render(data);
      })
      .catch(function () {
        /* offline for a moment: the next tick tries again */
      });
  };
  window.setInterval(refresh, 10000);
  // A live notification (regional_cloud.notifications) refreshes at once.
  document.addEventListener("rc:notification", refresh);
  document.addEventListener("visibilitychange", refresh);
})();
