// fieldsync console: live refresh and search-as-you-type. Every page works without it.
"use strict";
(function () {
  // Live: re-read the page when the server says something changed, and swap in the new
  // <main>, unless the dispatcher is typing into a form on it.
  var live = document.body.getAttribute("data-live");
  function busy() {
    var a = document.activeElement;
    return a && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.form && a.form.method === "post";
  }
  function refresh() {
    if (busy()) { return; }
    fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok || r.redirected) { return null; }
      return r.text();
    }).then(function (html) {
      if (!html) { return; }
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("main");
      var cur = document.getElementById("main");
      if (fresh && cur && !busy()) {
        cur.innerHTML = fresh.innerHTML;
        document.body.setAttribute("data-refreshed", String(Date.now()));
        wire();
      }
    }).catch(function () {});
  }
  if (live && window.EventSource) {
    var es = new EventSource(live);
    es.addEventListener("change", refresh);
    es.onopen = function () { document.body.setAttribute("data-live-ready", "1"); };
  }
  // Search: fill a <datalist> with matches from the server as the user types.
  function wire() {
    Array.prototype.forEach.call(document.querySelectorAll("input[data-search]"), function (input) {
      if (input.getAttribute("data-wired")) { return; }
      input.setAttribute("data-wired", "1");
      var timer = null;
      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () {
          var url = "/console/search?kind=" + encodeURIComponent(input.getAttribute("data-search")) +
            "&q=" + encodeURIComponent(input.value);
          fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (rows) {
            var list = document.getElementById(input.getAttribute("list"));
            if (!list) { return; }
            list.innerHTML = "";
            rows.forEach(function (row) {
              var o = document.createElement("option");
              o.value = row.id;
              o.textContent = row.label;
              list.appendChild(o);
            });
          }).catch(function () {});
        }, 150);
      });
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-confirm]"), function (b) {
      if (b.getAttribute("data-wired")) { return; }
      b.setAttribute("data-wired", "1");
      b.addEventListener("click", function (e) {
        if (!window.confirm(b.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  }
  wire();
})();
