// dtaas dashboard: the live parts. Every page works without this script; with it, logs and
// build output grow as they come, without reloading.
//
//   <pre data-live-log="/v1/jobs/ID/logs" data-live-state="ID-of-an-element">  server-sent
//     events (`log` lines appended; `end` writes the final state into that element and marks
//     the pre `data-ended`; elements marked `data-live-while` (e.g. a Stop form) are hidden
//     and elements marked `data-live-after` (rendered `hidden`, e.g. a Run form or a note to
//     reload for the result) are shown).
//   <pre data-live-poll="/v1/builds/ID" data-live-field="output">  polled every second until
//     the object's `state` is no longer PENDING, then the page reloads once.
(function () {
  "use strict";
  function append(pre, text) {
    var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.appendChild(document.createTextNode(text + "\n"));
    if (atBottom) { pre.scrollTop = pre.scrollHeight; }
  }
  function follow(pre) {
    var url = pre.getAttribute("data-live-log");
    var source = new EventSource(url + (url.indexOf("?") < 0 ? "?" : "&") + "follow=1");
    var fresh = true;
    source.addEventListener("log", function (e) {
      if (fresh) { pre.textContent = ""; fresh = false; }
      append(pre, e.data);
    });
    source.addEventListener("end", function (e) {
      source.close();
      var state = "";
      try { state = JSON.parse(e.data).state || ""; } catch (_) { state = ""; }
      var target = document.getElementById(pre.getAttribute("data-live-state") || "");
      if (target && state) { target.textContent = state; }
      document.querySelectorAll("[data-live-while]").forEach(function (el) { el.hidden = true; });
      document.querySelectorAll("[data-live-after]").forEach(function (el) { el.hidden = false; });
      pre.setAttribute("data-ended", state || "ended");
    });
    source.addEventListener("error", function () { source.close(); });
  }
  function poll(pre) {
    var url = pre.getAttribute("data-live-poll");
    var field = pre.getAttribute("data-live-field") || "output";
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (v) {
          if (!v) { return; }
          pre.textContent = v[field] || "";
          pre.scrollTop = pre.scrollHeight;
          if (v.state === "PENDING") { setTimeout(tick, 1000); } else { window.location.reload(); }
        })
        .catch(function () { setTimeout(tick, 2000); });
    }
    setTimeout(tick, 1000);
  }
  document.querySelectorAll("[data-live-log]").forEach(follow);
  document.querySelectorAll("[data-live-poll]").forEach(poll);
})();
