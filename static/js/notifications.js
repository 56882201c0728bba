// Notifications: the nav links and the unread badge, kept live over /ws/notifications/.
(function () {
  "use strict";

  var extras = document.getElementById("reading-nav");
  var nav = document.querySelector(".main-nav ul");
  if (extras && nav) {
    while (extras.firstElementChild) nav.appendChild(extras.firstElementChild);
    extras.remove();
  }
  var badge = document.getElementById("notif-count");
  if (!badge || !("WebSocket" in window)) return;

  function setCount(n) {
    badge.textContent = String(n);
    badge.dataset.unread = String(n);
    badge.hidden = n === 0;
  }

  function toast(item) {
    var box = document.createElement("a");
    box.className = "notif-toast notif-toast-" + item.kind;
    box.href = "/notifications/" + encodeURIComponent(item.id) + "/";
    box.setAttribute("role", "status");
    box.textContent = item.title;
    document.body.appendChild(box);
    window.setTimeout(function () { box.remove(); }, 12000);
  }

  var delay = 2000;
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/notifications/");
    socket.onopen = function () { delay = 2000; };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (typeof message.unread === "number") setCount(message.unread);
      if (message.type === "notification" && message.notification) toast(message.notification);
    };
    socket.onclose = function () {
      window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 60000);
    };
  }
  connect();
})();
