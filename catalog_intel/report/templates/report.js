(function () {
  'use strict';
  var form = document.getElementById('filters');
  if (!form) return;
  var cards = Array.prototype.slice.call(document.querySelectorAll('#cards .card'));
  var shown = document.getElementById('shown');
  var LIST_FIELDS = ['bullet_points', 'seo_tags'];

  // --- filters ---------------------------------------------------------------------------
  function apply() {
    var chosen = Array.prototype.slice.call(form.querySelectorAll('select[data-attr]'))
      .filter(function (s) { return s.value !== ''; });
    var review = form.elements.review.checked, grouped = form.elements.grouped.checked;
    var status = form.elements.status ? form.elements.status.value : '';
    var text = form.elements.q.value.trim().toLowerCase();
    var n = 0;
    cards.forEach(function (card) {
      var ok = chosen.every(function (s) { return card.getAttribute('data-' + s.getAttribute('data-attr')) === s.value; });
      if (ok && review) ok = card.getAttribute('data-review') === '1';
      if (ok && grouped) ok = card.getAttribute('data-grouped') === '1';
      if (ok && status) ok = (card.getAttribute('data-status') || 'pending') === status;
      if (ok && text) ok = card.getAttribute('data-text').indexOf(text) !== -1;
      card.hidden = !ok;
      if (ok) n++;
    });
    shown.textContent = n + ' of ' + cards.length + ' shown';
  }
  form.addEventListener('input', apply);
  form.addEventListener('change', apply);
  form.addEventListener('submit', function (ev) { ev.preventDefault(); });

  // --- review: edits kept in localStorage until cleared -----------------------------------
  var KEY = 'catalog-intel-review:' + (document.body.getAttribute('data-run') || location.pathname);
  var state = {};
  try { state = JSON.parse(localStorage.getItem(KEY) || '{}') || {}; } catch (err) { state = {}; }
  function save() {
    try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (err) { /* storage full or disabled */ }
  }
  function entry(image) { return state[image] || (state[image] = {f: {}, s: '', r: ''}); }
  function fields(card) { return Array.prototype.slice.call(card.querySelectorAll('[data-field]')); }
  // The editor's attribute choices are added when it is first opened (one vocabulary for the page).
  var vocabulary = JSON.parse(document.getElementById('vocabulary').getAttribute('data-vocab') || '{}');
  function fill(card) {
    if (card.getAttribute('data-filled')) return;
    card.setAttribute('data-filled', '1');
    Array.prototype.forEach.call(card.querySelectorAll('select[data-field]'), function (sel) {
      var have = Array.prototype.map.call(sel.options, function (o) { return o.value; });
      (vocabulary[sel.getAttribute('data-field')] || []).forEach(function (v) {
        if (have.indexOf(v) === -1) { var o = document.createElement('option'); o.textContent = v; sel.appendChild(o); }
      });
    });
  }
  function machine(el) {  // the value the page was rendered with
    if (el.tagName !== 'SELECT') return el.defaultValue;
    var opt = Array.prototype.filter.call(el.options, function (o) { return o.defaultSelected; })[0];
    return opt ? opt.value : '';
  }
  function statusOf(e) {
    if (!e) return 'pending';
    if (e.s === 'rejected') return 'rejected';
    if (Object.keys(e.f).length) return 'edited';
    return e.s === 'approved' ? 'approved' : 'pending';
  }
  function show(card) {
    var image = card.getAttribute('data-image'), e = state[image];
    if (e && Object.keys(e.f).length) fill(card);
    fields(card).forEach(function (el) {
      var name = el.getAttribute('data-field');
      var edited = e && Object.prototype.hasOwnProperty.call(e.f, name);
      if (edited && el.value !== e.f[name]) el.value = e.f[name];
      var target = card.querySelector('[data-show="' + name + '"]');
      if (target) {
        var value = edited ? e.f[name] : machine(el);
        if (LIST_FIELDS.indexOf(name) !== -1) {
          target.textContent = '';
          value.split(';').map(function (x) { return x.trim(); }).filter(Boolean).forEach(function (x) {
            var li = document.createElement(target.tagName === 'UL' ? 'li' : 'span');
            if (target.tagName !== 'UL') li.className = 'pill';
            li.textContent = x;
            target.appendChild(li);
          });
        } else {
          target.textContent = value;
        }
        target.classList.toggle('edited', !!edited);
      }
    });
    var st = statusOf(e);
    card.setAttribute('data-status', st);
    card.querySelector('.rstatus').textContent = st === 'pending' ? '' : st + (st === 'rejected' && e.r ? ': ' + e.r : '');
    var reason = card.querySelector('input.reason');
    if (reason && e && document.activeElement !== reason) reason.value = e.r || '';
  }
  function onField(card, el) {
    var image = card.getAttribute('data-image'), e = entry(image), name = el.getAttribute('data-field');
    if (el.value === machine(el)) delete e.f[name]; else e.f[name] = el.value;
    save(); show(card); progress();
  }
  function setStatus(card, s) {
    var e = entry(card.getAttribute('data-image'));
    e.s = s;
    if (s === 'rejected') e.r = card.querySelector('input.reason').value.trim();
    save(); show(card); progress();
  }
  cards.forEach(function (card) {
    card.querySelector('details.editor summary').addEventListener('click', function () { fill(card); });
    fields(card).forEach(function (el) {
      el.addEventListener('change', function () { onField(card, el); });
    });
    card.querySelector('.review-bar').addEventListener('click', function (ev) {
      var act = ev.target.getAttribute && ev.target.getAttribute('data-act');
      if (act === 'approve') setStatus(card, 'approved');
      else if (act === 'reject') setStatus(card, 'rejected');
      else if (act === 'reset') { delete state[card.getAttribute('data-image')]; save(); fields(card).forEach(function (el) { el.value = machine(el); }); show(card); progress(); }
    });
    card.querySelector('input.reason').addEventListener('change', function (ev) {
      var e = entry(card.getAttribute('data-image'));
      e.r = ev.target.value.trim();
      save(); show(card); progress();
    });
    show(card);
  });

  // --- progress and per-attribute acceptance ---------------------------------------------
  var attrs = Array.prototype.slice.call(document.querySelectorAll('#acceptance tbody tr')).map(function (tr) {
    return tr.getAttribute('data-attr');
  });
  function progress() {
    var counts = {approved: 0, edited: 0, rejected: 0, pending: 0};
    var accepted = {}, reviewed = 0;
    cards.forEach(function (card) {
      var e = state[card.getAttribute('data-image')], st = statusOf(e);
      counts[st]++;
      if (st === 'approved' || st === 'edited') {
        reviewed++;
        attrs.forEach(function (a) { if (!Object.prototype.hasOwnProperty.call(e.f, a)) accepted[a] = (accepted[a] || 0) + 1; });
      }
    });
    Object.keys(counts).forEach(function (k) { document.getElementById('n-' + k).textContent = counts[k]; });
    attrs.forEach(function (a) {
      var n = accepted[a] || 0;
      var cell = document.querySelector('#acceptance tr[data-attr="' + a + '"] td');
      cell.textContent = reviewed ? Math.round(100 * n / reviewed) + '% (' + n + ' of ' + reviewed + ')' : '–';
    });
  }

  // --- bulk and download ------------------------------------------------------------------
  document.getElementById('approve-shown').addEventListener('click', function () {
    cards.forEach(function (card) {
      if (card.hidden) return;
      var e = entry(card.getAttribute('data-image'));
      if (e.s !== 'rejected') e.s = 'approved';
      show(card);
    });
    save(); progress();
  });
  document.getElementById('clear-edits').addEventListener('click', function () {
    state = {}; save();
    cards.forEach(function (card) { fields(card).forEach(function (el) { el.value = machine(el); }); show(card); });
    progress();
  });
  // One CSV cell, neutralised as exports/tables.py does: a text cell a spreadsheet would run as a
  // formula gets a quote prefixed; a key (image, product_id) is never changed, only quoted.
  function cell(v, key) {
    v = v == null ? '' : String(v);
    var formula = /^\s*[=+\-@\t\r]/.test(v);
    if (formula && !key) v = "'" + v;
    return formula || /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  }
  function editsCsv() {
    var order = Array.prototype.slice.call(document.querySelectorAll('#cards .card'))[0];
    var names = order ? fields(order).map(function (el) { return el.getAttribute('data-field'); }) : [];
    var rows = cards.filter(function (c) { return statusOf(state[c.getAttribute('data-image')]) !== 'pending'; });
    var used = names.filter(function (n) {
      return rows.some(function (c) { return Object.prototype.hasOwnProperty.call(state[c.getAttribute('data-image')].f, n); });
    });
    var withProduct = cards.some(function (c) { return c.getAttribute('data-product'); });
    var header = ['image'].concat(withProduct ? ['product_id'] : [], used, ['review_status', 'review_reason']);
    var lines = [header.map(function (v) { return cell(v, true); }).join(',')];
    rows.forEach(function (c) {
      var e = state[c.getAttribute('data-image')], st = statusOf(e);
      var out = [c.getAttribute('data-image')].concat(withProduct ? [c.getAttribute('data-product')] : []);
      used.forEach(function (n) { out.push(Object.prototype.hasOwnProperty.call(e.f, n) ? e.f[n] : ''); });
      out.push(st, st === 'rejected' ? (e.r || 'rejected by reviewer') : '');
      var keys = withProduct ? 2 : 1;
      lines.push(out.map(function (v, i) { return cell(v, i < keys); }).join(','));
    });
    return lines.join('\r\n') + '\r\n';
  }
  window.catalogReviewEditsCsv = editsCsv;
  document.getElementById('download-edits').addEventListener('click', function () {
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([editsCsv()], {type: 'text/csv'}));
    a.download = 'edits.csv';
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  });

  apply();
  progress();
})();
