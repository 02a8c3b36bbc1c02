// The users table: search, filter by outcome and sort by any column, all in the page (no server). The
// table is complete without this script; the view is kept in the address's #fragment (q, outcome, sort,
// dir), so a link or a bookmark opens the same view.
(function () {
  "use strict";
  var table = document.getElementById("users-table");
  var tools = document.getElementById("tools");
  if (!table || !tools || !table.tBodies.length) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var q = document.getElementById("q");
  var outcome = document.getElementById("outcome");
  var shown = document.getElementById("shown");
  var view = { q: "", outcome: "", sort: "", dir: "asc" };

  function readHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    view.q = params.get("q") || "";
    view.outcome = params.get("outcome") || "";
    view.sort = params.get("sort") || "";
    view.dir = params.get("dir") === "desc" ? "desc" : "asc";
  }

  function writeHash() {
    var params = new URLSearchParams();
    Object.keys(view).forEach(function (k) { if (view[k] && !(k === "dir" && !view.sort)) { params.set(k, view[k]); } });
    history.replaceState(null, "", "#" + params.toString());
  }

  function filter() {
    var needle = view.q.toLowerCase().trim();
    var n = 0;
    rows.forEach(function (row, i) {
      var ok = (!needle || texts[i].indexOf(needle) >= 0) &&
        (!view.outcome || row.getAttribute("data-group") === view.outcome);
      row.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = tools.getAttribute("data-shown").replace("{n}", n).replace("{total}", rows.length);
    table.setAttribute("data-shown", String(n));
  }

  function value(row, i, numeric) {
    var cell = row.cells[i];
    var v = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    return numeric ? parseFloat(v) || 0 : v.toLowerCase();
  }

  var sorted = false;  // the rows are in the page's order until a sort moves them

  function sort() {
    var i = heads.findIndex(function (th) { return th.getAttribute("data-key") === view.sort; });
    heads.forEach(function (th) { th.removeAttribute("aria-sort"); });
    if (i < 0 && !sorted) { return; }  // moving 30,000 rows back where they are costs a whole layout
    sorted = i >= 0;
    var order = rows.slice();
    if (i >= 0) {
      var numeric = heads[i].classList.contains("n");
      var sign = view.dir === "desc" ? -1 : 1;
      // each row's key read once, not at every comparison: 30,000 rows sort in a blink
      var keys = rows.map(function (row) { return value(row, i, numeric); });
      var index = rows.map(function (_row, k) { return k; });
      index.sort(function (a, b) {
        var x = keys[a], y = keys[b];
        var c = x < y ? -1 : x > y ? 1 : 0;
        return c * sign || a - b;
      });
      order = index.map(function (k) { return rows[k]; });
      heads[i].setAttribute("aria-sort", view.dir === "desc" ? "descending" : "ascending");
    }
    var frag = document.createDocumentFragment();
    order.forEach(function (row) { frag.appendChild(row); });
    body.appendChild(frag);
  }

  heads.forEach(function (th) {
    var button = document.createElement("button");
    button.type = "button";
    while (th.firstChild) { button.appendChild(th.firstChild); }
    th.appendChild(button);
    button.addEventListener("click", function () {
      var key = th.getAttribute("data-key");
      view.dir = view.sort === key && view.dir === "asc" ? "desc" : "asc";
      view.sort = key;
      sort();
      writeHash();
    });
  });
  q.addEventListener("input", function () { view.q = q.value; filter(); writeHash(); });
  outcome.addEventListener("change", function () { view.outcome = outcome.value; filter(); writeHash(); });
  window.addEventListener("hashchange", function () { readHash(); q.value = view.q; outcome.value = view.outcome; filter(); sort(); });
  readHash();
  q.value = view.q;
  outcome.value = view.outcome;
  tools.hidden = false;
  filter();
  sort();
  document.documentElement.setAttribute("data-ready", "1");
}());
