// The status page's script: refreshes every job's calendar from /api/slots without
// reloading, and shows a slot's details on click. No dependency, nothing inline (the
// page's Content-Security-Policy allows only this file). Renders the same markup as the
// server (daemon/cli/status_html.cpp), from the same JSON.
'use strict';

(function () {
  const GLYPHS = {
    done: '✓', waiting: '…', downloading: '↓', uploading: '↑',
    failed: '✗', lost: '!', not_ready: '○', unplanned: '?'
  };
  let data = null;
  let selected = null; // {job, slot, chart}

  function every() {
    const asked = Number(new URLSearchParams(location.search).get('refresh'));
    return asked > 0 ? Math.max(0.2, asked) : 5;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '1' : String(value));
    }
    for (const child of children || []) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function span(seconds) {
    seconds = Math.max(0, Math.floor(seconds || 0));
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
      m = Math.floor(seconds % 3600 / 60);
    if (d > 0) return d + 'd' + h + 'h';
    if (h > 0) return h + 'h' + m + 'm';
    return m > 0 ? m + 'm' : '<1m';
  }

  // A state as the legend words it ("not ready", not "not_ready").
  function words(state) {
    return String(state).replace(/_/g, ' ');
  }

  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  // "10:40 UTC" on the day of `now`, else "Dec 7 06:00 UTC": short, and plainly UTC
  // (slot names are Beijing time). As status_html.cpp's short_utc.
  function shortUtc(at, now) {
    const t = new Date(at), n = new Date(now);
    if (isNaN(t)) return String(at);
    const hm = String(t.getUTCHours()).padStart(2, '0') + ':' + String(t.getUTCMinutes()).padStart(2, '0');
    const sameDay = t.getUTCFullYear() === n.getUTCFullYear() && t.getUTCMonth() === n.getUTCMonth() &&
      t.getUTCDate() === n.getUTCDate();
    return (sameDay ? '' : MONTHS[t.getUTCMonth()] + ' ' + t.getUTCDate() + ' ') + hm + ' UTC';
  }

  function nextAsk(job, now) {
    const secs = (Date.parse(job.next_ask.at) - Date.parse(now)) / 1000;
    return ['Next ask: slot ', el('b', {}, [job.next_ask.slot]), ' (Beijing), ',
      secs > 0 ? 'in ' + span(secs) : 'now', ' — ',
      el('time', { datetime: job.next_ask.at }, [shortUtc(job.next_ask.at, now)])];
  }

  function left(cell) {
    return cell.seconds_left > 0 ? span(cell.seconds_left) : 'none';
  }

  function bytes(n) {
    if (n === undefined || n === null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
  }

  function title(cell) {
    let out = cell.slot + (cell.chart ? ' chart ' + cell.chart : '') + ' · ' + words(cell.state);
    if (cell.attempts > 0) out += ' · ' + cell.attempts + ' attempt(s)';
    if (cell.last_error) out += ' · ' + cell.last_error;
    return out + ' · ' + left(cell) + ' left';
  }

  function slotAttrs(job, cell) {
    return {
      'data-job': job, 'data-slot': cell.slot, 'data-state': cell.state,
      'data-chart': cell.chart || null, 'data-risk': cell.at_risk || null
    };
  }

  function cellButton(job, cell) {
    const attrs = slotAttrs(job, cell);
    attrs.type = 'button';
    attrs.class = 'cell';
    attrs.title = title(cell);
    return el('button', attrs, [GLYPHS[cell.state] || '·']);
  }

  function row(label, job, cells) {
    return el('div', { class: 'row' }, [
      el('span', { class: 'label' }, [label]),
      el('div', { class: 'cells' }, cells.map((c) => cellButton(job, c)))
    ]);
  }

  function calendar(job) {
    const hourly = job.granularity === 'hour';
    const node = el('div', { class: 'calendar ' + (hourly ? 'hourly' : 'daily') });
    if (hourly) {
      const hours = [];
      for (let h = 0; h < 24; h++) hours.push(el('span', {}, [h]));
      node.append(el('div', { class: 'row hours', 'aria-hidden': 'true' }, [
        el('span', { class: 'label' }), el('div', { class: 'cells' }, hours)]));
      for (const day of job.days) node.append(row(day.date, job.job, day.cells));
    } else {
      const rows = new Map();
      for (const day of job.days) {
        for (const cell of day.cells) {
          const key = cell.chart || '';
          if (!rows.has(key)) rows.set(key, []);
          rows.get(key).push(cell);
        }
      }
      for (const [chart, cells] of rows) node.append(row(chart || 'days', job.job, cells));
    }
    return node;
  }

  // As the server renders it (status_html.cpp): the most urgent few, then a count.
  const ATTENTION_SHOWN = 8;

  function attention(job) {
    return el('ul', { class: 'attention' }, job.attention.slice(0, ATTENTION_SHOWN).map((cell) => {
      const parts = [el('span', { class: 'glyph' }, [GLYPHS[cell.state] || '·']), ' ',
        el('b', { class: 'slot' }, [cell.slot])];
      if (cell.chart) parts.push(' ', el('span', { class: 'chart' }, [cell.chart]));
      parts.push(' ', el('span', { class: 'state' }, [words(cell.state)]));
      if (cell.last_error) parts.push(' ', el('span', { class: 'error' }, [cell.last_error]));
      parts.push(' ', el('span', { class: 'left' }, [left(cell) + ' left']));
      return el('li', slotAttrs(job.job, cell), parts);
    }));
  }

  function section(job, now) {
    let tags = job.kind + ' · ' + job.granularity;
    if (job.sink) tags += ' · sink ' + job.sink;
    const counts = el('ul', { class: 'counts' });
    for (const [state, count] of Object.entries(job.counts)) {
      if (count > 0) {
        counts.append(el('li', { 'data-state': state }, [
          el('span', { class: 'glyph' }, [GLYPHS[state] || '·']), count + ' ' + words(state)]));
      }
    }
    const parts = [
      el('header', { class: 'job-head' }, [el('h2', {}, [job.job]), el('span', { class: 'tags' }, [tags])]),
      counts
    ];
    if (job.next_ask) {
      parts.push(el('p', { class: 'next' }, nextAsk(job, now)));
    }
    parts.push(attention(job));
    if (job.attention.length > ATTENTION_SHOWN) {
      parts.push(el('p', { class: 'more' }, ['and ' + (job.attention.length - ATTENTION_SHOWN) +
        ' more (the calendar shows them)']));
    }
    parts.push(calendar(job));
    return el('section', { class: 'job', 'data-job': job.job }, parts);
  }

  function daemonLine(daemon) {
    return 'version ' + daemon.version + ' · up ' + span(daemon.uptime_seconds) +
      ' · last reload ' + (daemon.last_reload || 'none');
  }

  function findCell(job, slot, chart) {
    if (!data) return null;
    for (const j of data.jobs) {
      if (j.job !== job) continue;
      for (const day of j.days) {
        for (const cell of day.cells) {
          if (cell.slot === slot && (cell.chart || '') === (chart || '')) return cell;
        }
      }
      for (const cell of j.attention) {
        if (cell.slot === slot && (cell.chart || '') === (chart || '')) return cell;
      }
    }
    return null;
  }

  function showDetails() {
    const aside = document.getElementById('details');
    if (!selected || !aside) return;
    const cell = findCell(selected.job, selected.slot, selected.chart);
    aside.classList.add('open');
    const set = (field, value) => {
      const node = aside.querySelector('[data-field="' + field + '"]');
      if (node) node.textContent = value === undefined || value === null || value === '' ? '–' : String(value);
    };
    set('title', selected.job + ' ' + selected.slot + (selected.chart ? ' · ' + selected.chart : ''));
    // Not set(): an empty hint must stay empty (the CSS hides it), not show "–".
    const hint = aside.querySelector('[data-field="hint"]');
    if (hint) hint.textContent = cell ? '' : 'This slot is no longer shown.';
    if (!cell) return;
    set('state', words(cell.state) + (cell.at_risk ? ' (at risk)' : ''));
    set('attempts', cell.attempts);
    set('api_status', cell.api_status);
    set('last_error', cell.last_error);
    set('files', cell.files);
    set('bytes', cell.bytes ? bytes(cell.bytes) + ' (' + cell.bytes + ')' : cell.bytes);
    set('rows', cell.rows);
    set('progress', cell.bytes_done === undefined ? null
      : bytes(cell.bytes_done) + (cell.bytes_total ? ' of ' + bytes(cell.bytes_total) : ''));
    const now = data.generated_at;
    set('next_at', cell.next_at ? shortUtc(cell.next_at, now) : null);
    set('left', left(cell) + ' (' + shortUtc(cell.lost_at, now) + ')');
    aside.classList.add('open');
  }

  function render(fresh) {
    data = fresh;
    const main = document.getElementById('jobs');
    main.replaceChildren(...fresh.jobs.map((job) => section(job, fresh.generated_at)));
    if (fresh.daemon) document.getElementById('daemon').textContent = daemonLine(fresh.daemon);
    showDetails();
    document.body.dataset.updated = fresh.generated_at;
  }

  async function refresh() {
    try {
      const answer = await fetch('/api/slots', { cache: 'no-store' });
      if (!answer.ok) throw new Error('HTTP ' + answer.status);
      render(await answer.json());
      document.body.classList.remove('stale');
    } catch (error) {
      // The daemon restarting, say: the last calendar stays, marked stale.
      document.body.classList.add('stale');
    }
    setTimeout(refresh, every() * 1000);
  }

  document.addEventListener('click', (event) => {
    const target = event.target.closest('[data-slot], [data-action="close"]');
    if (!target) return;
    if (target.dataset.action === 'close') {
      document.getElementById('details').classList.remove('open');
      selected = null;
      return;
    }
    selected = { job: target.dataset.job, slot: target.dataset.slot, chart: target.dataset.chart };
    showDetails(); // before the first refresh: filled as soon as it lands (render)
  });

  document.addEventListener('DOMContentLoaded', () => {
    const shown = document.getElementById('every');
    if (shown) shown.textContent = String(every());
    refresh();
  });
})();
