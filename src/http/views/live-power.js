// The energy dashboards' power figure, live: after each metering pass cattery sends the new readings on the page's
// WebSocket (/dashboard/live) and this script writes them into the page. The page is whole without it (the figures
// are server-rendered); when the socket closes it tries again a few times, spaced out, then stops.
(function () {
  'use strict';
  var root = document.documentElement;
  if (!document.querySelector('[data-live]') || typeof WebSocket !== 'function') return;
  var tries = 0;
  var timeOf = function (iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? '' : d.toLocaleTimeString(root.lang === 'fr' ? 'fr-FR' : 'en-GB');
  };
  var set = function (el, text) { if (el && el.textContent !== text) el.textContent = text; };
  function apply(m) {
    if (!m || !Array.isArray(m.servers)) return;
    set(document.querySelector('[data-live="total"]'), Number(m.totalW).toFixed(1));
    var at = document.querySelector('[data-live="at"]');
    if (at && m.at) { at.setAttribute('datetime', m.at); set(at, timeOf(m.at)); }
    m.servers.forEach(function (s) {
      var row = document.querySelector('tr[data-server="' + Number(s.id) + '"]');
      if (!row) return;
      set(row.querySelector('[data-live="watts"]'), Number(s.watts).toFixed(1) + ' W');
      set(row.querySelector('[data-live="load"]'), Math.round(Number(s.load)) + ' %');
    });
  }
  function connect() {
    var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/dashboard/live');
    ws.onmessage = function (e) {
      tries = 0;
      try { apply(JSON.parse(e.data)); } catch (err) { /* a message this page does not understand: the next one */ }
    };
    ws.onclose = function () {
      if (++tries <= 6) setTimeout(connect, Math.min(60000, 1000 * Math.pow(2, tries)));
    };
  }
  connect();
})();
