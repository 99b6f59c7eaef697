/* gkd-bench leaderboard site: sortable tables, filters, "show all columns".
 * Plain JavaScript, no dependencies, works from file:// (no fetch, no modules).
 * Tables with class "sortable": click (or Enter/Space on) a header to sort by
 * that column; numbers sort by the cell's data-v attribute (the unrounded
 * mean), text alphabetically; empty cells always go last; a second click
 * reverses the order. Forms with class "filters" and data-table="ID" filter
 * table ID's rows by the select elements' data-filter-col (exact match on the
 * cell's data-v) and report the visible row count in [data-row-count].
 */
(function () {
  "use strict";

  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell ? cell.getAttribute("data-v") : null;
    if (raw === null) { raw = cell ? cell.textContent.trim() : ""; }
    if (raw === "" || raw === "None" || raw === "nan") { return null; }
    if (numeric) {
      var x = parseFloat(raw);
      return isNaN(x) ? null : x;
    }
    return raw.toLowerCase();
  }

  function sortTable(table, index, th) {
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    // first click: numbers high to low (leaderboard order), text A to Z; then toggle
    var dir;
    if (current === "descending") { dir = 1; }
    else if (current === "ascending") { dir = -1; }
    else { dir = numeric ? -1 : 1; }
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, key: cellKey(row, index, numeric), i: i };
    });
    rows.sort(function (a, b) {
      if (a.key === null && b.key === null) { return a.i - b.i; }
      if (a.key === null) { return 1; }
      if (b.key === null) { return -1; }
      if (a.key < b.key) { return -dir; }
      if (a.key > b.key) { return dir; }
      return a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }

  function initSortable(table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.classList.add("sort-header");
      th.addEventListener("click", function () { sortTable(table, index, th); });
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortTable(table, index, th); }
      });
    });
  }

  function columnIndex(table, key) {
    var cells = table.tHead.rows[0].cells;
    for (var i = 0; i < cells.length; i++) {
      if (cells[i].getAttribute("data-key") === key) { return i; }
    }
    return -1;
  }

  function initFilters(form) {
    var table = document.getElementById(form.getAttribute("data-table"));
    if (!table) { return; }
    var selects = form.querySelectorAll("select[data-filter-col]");
    var counter = form.querySelector("[data-row-count]");
    var extra = form.querySelector("input[data-show-extra]");

    function apply() {
      var wanted = [];
      Array.prototype.forEach.call(selects, function (s) {
        var idx = columnIndex(table, s.getAttribute("data-filter-col"));
        if (s.value !== "" && idx >= 0) { wanted.push([idx, s.value]); }
      });
      var rows = table.tBodies[0].rows;
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var ok = wanted.every(function (w) {
          var cell = row.cells[w[0]];
          return cell && cell.getAttribute("data-v") === w[1];
        });
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      if (counter) {
        counter.textContent = shown + " of " + rows.length + " configurations";
      }
    }

    Array.prototype.forEach.call(selects, function (s) { s.addEventListener("change", apply); });
    if (extra) {
      extra.addEventListener("change", function () {
        table.classList.toggle("show-extra", extra.checked);
      });
    }
    apply();
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), initSortable);
    Array.prototype.forEach.call(document.querySelectorAll("form.filters"), initFilters);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
