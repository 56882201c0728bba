// The live worklist: a socket says which row changed (its id only); the row is then
// fetched through the API with the page's filters, so the permission filter decides.
(function () {
  "use strict";

  var tbody = document.getElementById("worklist-rows");
  if (!tbody) return;
  var words = JSON.parse(document.getElementById("worklist-i18n").textContent);
  var filterQuery = JSON.parse(document.getElementById("worklist-filters-query").textContent);
  var stateBox = document.getElementById("live-state");
  var stateLabel = stateBox && stateBox.querySelector(".live-label");
  var csrf = document.querySelector("input[name=csrfmiddlewaretoken]");
  var RANK = { emergency: 0, urgent: 1, routine: 2 };
  // With several pages, a new row shows only where it sorts inside this page.
  // On a later page, only the rows shown there change.
  var paged = Boolean(document.querySelector("[data-testid=worklist-pager]"));
  var countBox = document.getElementById("worklist-count");
  var laterPage = Boolean(countBox && Number(countBox.dataset.page) > 1);

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_m, key) { return String(values[key]); });
  }

  function waitingLabel(minutes) {
    if (minutes < 60) return format(words.min, { m: minutes });
    var hours = Math.floor(minutes / 60);
    if (hours < 24) return format(words.hm, { h: hours, m: minutes % 60 });
    return format(words.dh, { d: Math.floor(hours / 24), h: hours % 24 });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function minutesSince(iso) {
    return Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));
  }

  // Build a row from the API's JSON; every value goes in as text, never as HTML.
  function buildRow(row) {
    var tr = el("tr", "wl-row prio-row-" + row.priority + (row.claim ? " is-claimed" : ""));
    tr.dataset.task = row.id;
    tr.dataset.priority = row.priority;
    tr.dataset.routed = row.routed_at;

    var prio = el("td");
    prio.appendChild(el("span", "prio prio-" + row.priority, row.priority_label));
    tr.appendChild(prio);

    var waiting = el("td", "waiting", waitingLabel(minutesSince(row.routed_at)));
    tr.appendChild(waiting);

    var patient = el("td");
    var link = el("a", "patient-name", row.patient.name || row.patient.id);
    link.href = row.read_url;
    patient.appendChild(link);
    patient.appendChild(document.createTextNode(" "));
    patient.appendChild(el("span", "muted small", row.patient.sex_label + " " + row.patient.age));
    patient.appendChild(el("div", "muted small mono", row.patient.id));
    tr.appendChild(patient);

    var origin = el("td", "", row.origin.name);
    if (row.shared) {
      origin.appendChild(document.createTextNode(" "));
      origin.appendChild(el("span", "badge badge-shared", words.shared));
    }
    tr.appendChild(origin);
    tr.appendChild(el("td", "mono", row.modality));
    var exam = el("td", "", row.description);
    exam.appendChild(el("div", "muted small mono", row.accession_number));
    tr.appendChild(exam);
    tr.appendChild(el("td", "nowrap", row.study_date));

    var state = el("td");
    if (row.claim) {
      state.appendChild(
        row.claim.mine
          ? el("span", "claim claim-mine", words.mine)
          : el("span", "claim", format(words.reading, { name: row.claim.holder }))
      );
    } else {
      state.appendChild(el("span", "task-status task-" + row.status, row.status_label));
    }
    tr.appendChild(state);

    var actions = el("td", "actions");
    var images = el("a", "btn btn-small btn-ghost", words.images);
    images.href = row.viewer_url;
    actions.appendChild(images);
    actions.appendChild(document.createTextNode(" "));
    if (row.claim) {
      var open = el("a", "btn btn-small", words.open);
      open.href = row.read_url;
      actions.appendChild(open);
    } else {
      var form = el("form", "inline-form");
      form.method = "post";
      form.action = row.claim_url;
      if (csrf) {
        var token = el("input");
        token.type = "hidden";
        token.name = "csrfmiddlewaretoken";
        token.value = csrf.value;
        form.appendChild(token);
      }
      var button = el("button", "btn btn-small btn-primary", words.claim);
      button.type = "submit";
      form.appendChild(button);
      actions.appendChild(form);
    }
    tr.appendChild(actions);
    return tr;
  }

  function comesBefore(a, b) {
    var ra = RANK[a.dataset.priority], rb = RANK[b.dataset.priority];
    if (ra !== rb) return ra < rb;
    return Date.parse(a.dataset.routed) < Date.parse(b.dataset.routed);
  }

  function place(tr) {
    var rows = tbody.querySelectorAll("tr[data-task]");
    for (var i = 0; i < rows.length; i++) {
      if (comesBefore(tr, rows[i])) {
        tbody.insertBefore(tr, rows[i]);
        return true;
      }
    }
    // Past this page's last row it belongs to a later page.
    if (paged) return false;
    tbody.appendChild(tr);
    return true;
  }

  function refreshCount() {
    var n = tbody.querySelectorAll("tr[data-task]").length;
    if (paged) return; // the server's "x–y of z" stays until the next load
    var count = document.getElementById("worklist-count");
    if (count) count.textContent = format(words.count, { n: n });
    document.getElementById("worklist-empty").hidden = n > 0;
    document.getElementById("worklist-table-wrap").hidden = n === 0;
  }

  function findRow(id) {
    return tbody.querySelector('tr[data-task="' + id.replace(/[^0-9a-f-]/gi, "") + '"]');
  }

  function update(taskId) {
    var params = new URLSearchParams(filterQuery);
    params.append("id", taskId);
    fetch("/api/worklist/?" + params.toString(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) { return response.ok ? response.json() : { results: [] }; })
      .then(function (data) {
        var old = findRow(taskId);
        var row = data.results && data.results[0];
        if (old) old.remove();
        if (row) {
          var tr = buildRow(row);
          if ((laterPage && !old) || !place(tr)) return;
          if (!old) {
            tr.classList.add("is-new");
            window.setTimeout(function () { tr.classList.remove("is-new"); }, 4000);
          }
        }
        refreshCount();
      })
      .catch(function () { /* the next message or a reload brings it */ });
  }

  function setLive(live) {
    if (!stateBox) return;
    stateBox.dataset.state = live ? "live" : "offline";
    stateLabel.textContent = stateLabel.dataset[live ? "labelLive" : "labelOffline"];
  }

  var delay = 1000;
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/worklist/");
    socket.onopen = function () { delay = 1000; setLive(true); };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "changed" && message.task) update(message.task);
    };
    socket.onclose = function () {
      setLive(false);
      window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  // Waiting times move on by themselves.
  window.setInterval(function () {
    tbody.querySelectorAll("tr[data-task]").forEach(function (tr) {
      var cell = tr.querySelector(".waiting");
      if (cell) cell.textContent = waitingLabel(minutesSince(tr.dataset.routed));
    });
  }, 60000);

  if ("WebSocket" in window) connect();
})();
