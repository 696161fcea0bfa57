// Sorting and filtering of the report's tables, without a server. The
// page's Content-Security-Policy admits this script by its sha256: any
// change here changes the hash, which sweep.CSP computes from this file.
(function () {
  "use strict";

  function rows(table) {
    return Array.prototype.slice.call(table.tBodies[0].rows);
  }

  // A filter form names its table (data-table) and may hold a text box
  // (.f-text), a status list (.f-status, matched against a row's
  // data-status) and a lowest severity (.f-sev, against data-maxsev).
  function applyFilter(form) {
    var table = document.getElementById(form.getAttribute("data-table"));
    if (!table) {
      return;
    }
    var text = form.querySelector(".f-text");
    var status = form.querySelector(".f-status");
    var sev = form.querySelector(".f-sev");
    var q = text ? text.value.trim().toLowerCase() : "";
    var st = status ? status.value : "";
    var minSev = sev ? parseInt(sev.value, 10) || 0 : 0;
    var all = rows(table);
    var shown = 0;
    all.forEach(function (row) {
      var hay = row.getAttribute("data-search") || row.textContent.toLowerCase();
      var ok = (q === "" || hay.indexOf(q) >= 0) &&
        (st === "" || row.getAttribute("data-status") === st) &&
        (minSev === 0 || (parseInt(row.getAttribute("data-maxsev"), 10) || 0) >= minSev);
      row.hidden = !ok;
      if (ok) {
        shown++;
      }
    });
    var count = form.querySelector(".f-count");
    if (count) {
      count.textContent = shown + " of " + all.length + " shown";
    }
  }

  function sortKey(cell, type) {
    var v = cell ? (cell.getAttribute("data-sort") || cell.textContent.trim()) : "";
    return type === "num" ? (parseFloat(v) || 0) : v.toLowerCase();
  }

  // A header click sorts by its column, ascending first, then
  // descending; the sort is stable, so an earlier sort breaks ties.
  function sortBy(table, th) {
    var col = th.cellIndex;
    var type = th.getAttribute("data-type") || "text";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    rows(table).map(function (row) {
      return { row: row, key: sortKey(row.cells[col], type) };
    }).sort(function (a, b) {
      if (type === "num") {
        return sign * (a.key - b.key);
      }
      return sign * (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    }).forEach(function (e) {
      body.appendChild(e.row);
    });
  }

  document.querySelectorAll("form.filters").forEach(function (form) {
    var run = function () { applyFilter(form); };
    form.addEventListener("input", run);
    form.addEventListener("change", run);
    // Enter in the text box would submit the form, which the policy
    // forbids (form-action 'none') and which has nowhere to go.
    form.addEventListener("submit", function (ev) { ev.preventDefault(); });
    run();
  });
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      var button = th.querySelector("button");
      if (button) {
        button.addEventListener("click", function () { sortBy(table, th); });
      }
    });
  });
  document.documentElement.setAttribute("data-script", "ready");
}());
