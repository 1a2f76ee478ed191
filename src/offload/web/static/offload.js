// offload dashboard: confirmation of actions, auto-refresh of the page's content, the throughput chart.
// No framework and no build step; everything the page needs is served from this folder.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var STORAGE_KEY = "offload-auto-refresh";

  // Forms that change something carry data-confirm: ask before submitting. A selection form (data-selection)
  // asks its clicked button's question with the number of checked boxes, and refuses an empty selection.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (form.hasAttribute("data-selection")) {
      var checked = document.querySelectorAll('input[name="ids"][form="' + form.id + '"]:checked').length;
      if (!checked) {
        window.alert("Select jobs first.");
        event.preventDefault();
        return;
      }
      var button = event.submitter;
      question = ((button && button.getAttribute("data-question")) || "Go on?").replace("{n}", String(checked));
    }
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // The header checkbox of a selectable list checks or clears every box on the page.
  document.addEventListener("change", function (event) {
    if (event.target.id !== "select-all") { return; }
    Array.prototype.forEach.call(document.querySelectorAll('input[name="ids"]'), function (box) {
      box.checked = event.target.checked;
    });
  });

  function seconds(value) {
    return value < 1 ? Math.round(value * 1000) + " ms" : value < 120 ? value.toFixed(1) + " s" :
      (value / 60).toFixed(1) + " min";
  }

  function el(name, attrs) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    return node;
  }

  // Stacked bars per minute: finished below, failed above.
  function drawChart(svg) {
    var series;
    try {
      series = JSON.parse(svg.getAttribute("data-series") || "[]");
    } catch (e) {
      return;
    }
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var width = 600, height = 140, top = 14, bottom = 16, left = 28;
    var plot = height - top - bottom;
    var max = 1;
    series.forEach(function (row) { max = Math.max(max, row.finished + row.failed); });
    var step = (width - left) / Math.max(1, series.length);
    svg.appendChild(el("line", {x1: left, y1: height - bottom, x2: width, y2: height - bottom, "class": "axis"}));
    var label = el("text", {x: 2, y: top + 4, "class": "tick"});
    label.textContent = String(max);
    svg.appendChild(label);
    var zero = el("text", {x: 2, y: height - bottom, "class": "tick"});
    zero.textContent = "0";
    svg.appendChild(zero);
    series.forEach(function (row, i) {
      var x = left + i * step + 1;
      var w = Math.max(1, step - 2);
      var hFinished = plot * row.finished / max;
      var hFailed = plot * row.failed / max;
      var iso = new Date(row.t * 1000).toISOString();
      var when = (svg.getAttribute("data-bar") === "day" ? iso.slice(0, 10) :
        svg.getAttribute("data-bar") === "hour" ? iso.slice(0, 10) + " " + iso.slice(11, 16) : iso.slice(11, 16)) + " UTC";
      [["finished", hFinished, height - bottom - hFinished], ["failed", hFailed, height - bottom - hFinished - hFailed]]
        .forEach(function (bar) {
          if (bar[1] <= 0) { return; }
          var rect = el("rect", {x: x, y: bar[2], width: w, height: bar[1], "class": "bar " + bar[0]});
          var title = document.createElementNS(SVG, "title");
          title.textContent = when + ": " + row.finished + " finished, " + row.failed + " failed" +
            (row.p95 !== undefined ? "; run time p95 " + seconds(row.p95) : "") +
            (row.wait !== undefined ? "; longest wait " + seconds(row.wait) : "");
          rect.appendChild(title);
          svg.appendChild(rect);
        });
    });
    var start = el("text", {x: left, y: height - 2, "class": "tick"});
    start.textContent = svg.getAttribute("data-start-label") || "";
    svg.appendChild(start);
    var end = el("text", {x: width - 2, y: height - 2, "class": "tick end"});
    end.textContent = "now";
    svg.appendChild(end);
  }

  function drawCharts(root) {
    Array.prototype.forEach.call(root.querySelectorAll("svg[data-series]"), drawChart);
  }

  function autoRefreshOn() {
    return window.localStorage.getItem(STORAGE_KEY) !== "off";
  }

  // Not while the user types or picks, nor while jobs are selected (a refresh would clear the selection).
  function busy() {
    var active = document.activeElement;
    if (document.querySelector('input[name="ids"]:checked')) { return true; }
    return active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.id !== "auto-refresh";
  }

  // Fetch this page again and swap its content in, keeping the scroll position and the header.
  function refresh() {
    var content = document.getElementById("content");
    if (!content || !content.hasAttribute("data-refresh") || !autoRefreshOn() || document.hidden || busy()) {
      return;
    }
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Requested-With": "offload-refresh"}})
      .then(function (response) {
        if (response.status === 403) {  // the session ended: show the login form
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        if (fresh) {
          content.innerHTML = fresh.innerHTML;
          drawCharts(content);
          document.body.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* the server is restarting; try again next time */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    var toggle = document.getElementById("auto-refresh");
    if (toggle) {
      toggle.checked = autoRefreshOn();
      toggle.addEventListener("change", function () {
        window.localStorage.setItem(STORAGE_KEY, toggle.checked ? "on" : "off");
      });
    }
    var seconds = parseInt(document.body.getAttribute("data-refresh-seconds"), 10) || 5;
    window.setInterval(refresh, seconds * 1000);
  });
}());
