/* Tollgate dashboard: small progressive enhancements, no dependencies.
 * Every page works without this file. Load it in <head> without defer so the
 * "js" class lands on <html> before first paint; all handlers are delegated
 * on document, so nothing waits for the DOM.
 *
 *   button[data-copy="ID"]     copy the text of #ID to the clipboard
 *   form[data-confirm="Text"]  ask before submitting (also on a submit button)
 *   select[data-autosubmit]    submit the enclosing form on change
 */
(function () {
  'use strict';

  var doc = document;
  doc.documentElement.classList.add('js');

  var live = null;
  function announce(text) {
    if (!doc.body) return;
    if (!live) {
      live = doc.createElement('div');
      live.className = 'sr-only';
      live.setAttribute('role', 'status');
      live.setAttribute('aria-live', 'polite');
      doc.body.appendChild(live);
    }
    live.textContent = '';
    setTimeout(function () { live.textContent = text; }, 50);
  }

  function legacyCopy(text) {
    var ta = doc.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'sr-only';
    doc.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = doc.execCommand('copy'); } catch (e) { ok = false; }
    doc.body.removeChild(ta);
    return ok;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        if (!legacyCopy(text)) throw new Error('copy failed');
      });
    }
    return legacyCopy(text) ? Promise.resolve() : Promise.reject(new Error('copy failed'));
  }

  function selectContents(el) {
    if (el.select) { el.select(); return; }
    var range = doc.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function showState(btn, label, cls) {
    if (btn._tgLabel === undefined) btn._tgLabel = btn.innerHTML;
    clearTimeout(btn._tgTimer);
    btn.textContent = label;
    btn.classList.add(cls);
    btn._tgTimer = setTimeout(function () {
      btn.innerHTML = btn._tgLabel;
      btn._tgLabel = undefined;
      btn.classList.remove(cls);
    }, 1800);
  }

  doc.addEventListener('click', function (e) {
    var btn = e.target.closest ? e.target.closest('button[data-copy]') : null;
    if (!btn) return;
    e.preventDefault();
    var src = doc.getElementById(btn.getAttribute('data-copy'));
    if (!src) return;
    var text = ('value' in src && typeof src.value === 'string' ? src.value : src.textContent).trim();
    copyText(text).then(function () {
      showState(btn, 'Copied', 'copied');
      announce('Copied to clipboard');
    }, function () {
      selectContents(src);
      showState(btn, 'Press Ctrl+C', 'copy-failed');
    });
  });

  doc.addEventListener('submit', function (e) {
    var form = e.target;
    var sub = e.submitter;
    var msg = (sub && sub.getAttribute('data-confirm')) || form.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  doc.addEventListener('change', function (e) {
    var el = e.target;
    if (!el.matches || !el.matches('select[data-autosubmit]') || !el.form) return;
    if (el.form.requestSubmit) el.form.requestSubmit();
    else el.form.submit();
  });
})();
