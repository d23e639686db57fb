// The operators' page (index.html), served at /app.js.
//
// Everything shown from the API is data, and data may come from anyone who could upload an image
// or name a file: it is put on the page with textContent and DOM nodes only, never as HTML. The
// service's Content-Security-Policy forbids inline script as a second line of defence.
'use strict';

const $ = (id) => document.getElementById(id);
let categories = [];
let thumbnailUrls = [];  // blob: URLs of the thumbnails shown, released when replaced

// --- access token (serve --auth-tokens) ------------------------------------------------------

function token() {
  return sessionStorage.getItem('patchvec-token') || '';
}

function authHeaders() {
  return token() ? { Authorization: 'Bearer ' + token() } : {};
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...options.headers } });
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = { error: response.statusText };
  }
  if (response.status === 401) $('token-form').hidden = false;
  if (!response.ok) throw new ApiError((body && body.error) || response.statusText, response.status);
  return body;
}

// An <img> whose picture is fetched with the token (an <img src> cannot send one).
function thumbnail(url, title) {
  const img = document.createElement('img');
  img.alt = title;
  img.title = title;
  fetch(url, { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))))
    .then((blob) => {
      const objectUrl = URL.createObjectURL(blob);
      thumbnailUrls.push(objectUrl);
      img.src = objectUrl;
    })
    .catch(() => { img.alt = title + ' (unavailable)'; });
  return img;
}

function releaseThumbnails() {
  for (const url of thumbnailUrls) URL.revokeObjectURL(url);
  thumbnailUrls = [];
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function fixed(value, digits) {
  return typeof value === 'number' ? value.toFixed(digits) : '-';
}

// --- tabs -------------------------------------------------------------------------------------

function show(tab) {
  for (const name of ['inspect', 'reports', 'station']) {
    $(name).hidden = name !== tab;
    $('tab-' + name).classList.toggle('active', name === tab);
  }
  if (tab === 'reports') loadReports();
  if (tab === 'station') watchStation(); else stopWatchingStation();
}

// --- inspect ----------------------------------------------------------------------------------

function describeModel() {
  const c = categories.find((c) => c.category === $('category').value);
  if (!c) return;
  const t = c.thresholds ? 'image threshold ' + fixed(c.thresholds.image, 3) : 'no thresholds';
  $('model').textContent = `${c.backbone}${c.pretrained ? '' : ' (random weights)'}, bank of ` +
      `${c.bank_size} patches, ${c.stored_images} stored images, ${t}`;
}

async function loadCategories() {
  try {
    const health = await api('/healthz').catch((e) => ({ store: 'store unavailable' }));
    $('store').textContent = health.store_kind ? `${health.store_kind} store` +
        (health.store_ok ? '' : ' (unavailable)') : health.store || '';
    categories = await api('/v1/categories');
    $('category').replaceChildren(...categories.map((c) => element('option', c.category)));
    describeModel();
    $('error').textContent = '';
  } catch (e) { $('error').textContent = e.message; }
}

function matchCard(m) {
  const card = element('div', undefined, 'match');
  card.dataset.label = m.label;
  card.append(thumbnail(m.thumbnail, m.path),
              element('div', fixed(m.similarity, 4)),
              element('div', m.label === 'normal' ? 'normal' : m.defect,
                      m.label === 'anomalous' ? 'anomalous' : 'normal'));
  return card;
}

async function inspect(file) {
  $('error').textContent = '';
  const category = encodeURIComponent($('category').value);
  try {
    const r = await api(`/v1/inspect?category=${category}&name=${encodeURIComponent(file.name)}`,
                        { method: 'POST', body: file, headers: { 'Content-Type': file.type || 'application/octet-stream' } });
    $('original').src = URL.createObjectURL(file);
    $('overlay').src = 'data:image/png;base64,' + r.map_png;
    $('overlay').style.opacity = $('opacity').value / 100;
    const anomalous = r.verdict === 'anomalous';
    $('verdict').textContent = anomalous ? 'Anomaly' : 'Normal';
    $('verdict').className = anomalous ? 'anomalous' : 'normal';
    const n = typeof r.normalized === 'number' ? r.normalized : 0.5;
    $('fill').style.width = (100 * n) + '%';
    $('fill').style.background = anomalous ? 'var(--bad)' : 'var(--ok)';
    $('scoreline').textContent = `score ${fixed(r.score, 3)}` +
        (typeof r.threshold === 'number' ? ` (threshold ${fixed(r.threshold, 3)})` : '') +
        ` · best similarity ${fixed(r.best_similarity, 4)}`;
    $('reason').textContent = r.reason;
    $('report').textContent = r.report_id !== null ? `reported as #${r.report_id}`
      : r.report_pending ? 'report pending: the database has no primary now; it is stored once it has one' : '';
    // An answer without stored images to compare with says why (escaped: textContent).
    $('matches-title').textContent = r.note ? r.note : anomalous
        ? 'Closest known defects' : `${r.matches.length} most similar normal images`;
    releaseThumbnails();
    $('matches').replaceChildren(...r.matches.map(matchCard));
    $('result').hidden = false;
    $('picture').hidden = false;
  } catch (e) {
    $('error').textContent = e.message;
  }
}

// --- reports ----------------------------------------------------------------------------------

// The operator's decision: false alarm, or a defect with its type.
async function resolve(id, body) {
  await api(`/v1/reports/${id}/resolve`, {
    method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' },
  });
}

function decisionCell(r) {
  const cell = element('td', undefined, 'decision');
  if (r.status === 'resolved') {
    const what = r.resolution === 'defect' ? `defect: ${r.defect}` : 'false alarm';
    cell.append(element('div', what, r.resolution === 'defect' ? 'anomalous' : 'normal'),
                element('div', `by ${r.resolved_by || '?'} · ${r.resolved_at || ''}`, 'resolved'));
    if (r.note) cell.append(element('div', r.note, 'resolved'));
    return cell;
  }
  const decide = async (body) => {
    try {
      await resolve(r.id, body);
      $('error').textContent = '';
      loadReports();
    } catch (e) { $('error').textContent = e.message; }
  };
  const good = element('button', 'False alarm');
  good.className = 'false-alarm';
  good.addEventListener('click', () => decide({ resolution: 'false_alarm' }));
  const type = document.createElement('input');
  type.placeholder = 'defect type';
  type.className = 'defect-type';
  const bad = element('button', 'Defect');
  bad.className = 'defect';
  bad.addEventListener('click', () => {
    if (!type.value.trim()) { $('error').textContent = 'name the defect type first'; return; }
    decide({ resolution: 'defect', defect: type.value.trim() });
  });
  cell.append(good, type, bad);
  return cell;
}

function reportRow(r) {
  const row = document.createElement('tr');
  row.dataset.id = r.id;
  row.dataset.status = r.status;
  const defects = element('td');
  for (const m of r.matches.slice(0, 5)) {
    defects.append(thumbnail(m.thumbnail, `${m.defect} ${fixed(m.similarity, 4)}`));
  }
  const image = element('td', undefined, 'path');
  const picture = thumbnail(r.image_url, r.path);
  picture.className = 'reported';
  image.append(picture, element('div', r.path));
  row.append(element('td', String(r.id)), element('td', r.created), element('td', r.category),
             element('td', `${fixed(r.score, 3)} / ${fixed(r.threshold, 3)}`), image, defects,
             decisionCell(r));
  return row;
}

async function loadReports() {
  try {
    const status = $('report-status').value;
    const reports = await api('/v1/reports?limit=30' + (status ? '&status=' + status : ''));
    releaseThumbnails();
    if (reports.length === 0) {
      const empty = element('td', 'no reports', 'muted');
      empty.colSpan = 7;
      const row = document.createElement('tr');
      row.append(empty);
      $('report-rows').replaceChildren(row);
    } else {
      $('report-rows').replaceChildren(...reports.map(reportRow));
    }
  } catch (e) { $('error').textContent = e.message; }
}

// --- station (patchvec station) ---------------------------------------------------------------

// The status arrives as Server-Sent Events read through fetch (EventSource cannot send the
// token); a stream that ends is opened again after two seconds.
let stationStream = null;
const laneImages = {};  // lane -> {seq, url}: the latest picture shown, refetched when seq moves

function stopWatchingStation() {
  if (stationStream) stationStream.abort();
  stationStream = null;
}

async function watchStation() {
  stopWatchingStation();
  const controller = new AbortController();
  stationStream = controller;
  try {
    const response = await fetch('/v1/station/events', { headers: authHeaders(), signal: controller.signal });
    if (!response.ok) throw new Error(response.statusText);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split('\n')) {
          if (line.startsWith('data: ')) showStation(JSON.parse(line.slice(6)));
        }
      }
    }
  } catch (e) {
    if (controller.signal.aborted) return;
    $('error').textContent = 'station: ' + e.message;
  }
  if (stationStream === controller) setTimeout(() => { if (stationStream === controller) watchStation(); }, 2000);
}

function latestPicture(lane, img) {
  const shown = laneImages[lane.name];
  if (!lane.last || (shown && shown.seq === lane.sequence)) {
    if (shown) img.src = shown.url;
    return;
  }
  const seq = lane.sequence;
  fetch(lane.latest_image, { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))))
    .then((blob) => {
      if (laneImages[lane.name]) URL.revokeObjectURL(laneImages[lane.name].url);
      laneImages[lane.name] = { seq, url: URL.createObjectURL(blob) };
      img.src = laneImages[lane.name].url;
    })
    .catch(() => {});
}

function laneCard(lane) {
  const card = element('div', undefined, 'panel lane');
  card.dataset.lane = lane.name;
  card.append(element('h3', `${lane.name} · ${lane.category}`));
  const live = element('div', undefined, 'live');
  const img = document.createElement('img');
  img.alt = `latest image of lane ${lane.name}`;
  img.hidden = !lane.last;  // nothing to show yet (no broken-image icon)
  live.append(img);
  const last = lane.last;
  if (last) {
    const label = last.verdict === 'anomalous' ? 'NOK' : last.verdict === 'normal' ? 'OK' : 'ERROR';
    live.append(element('div', `${label} · ${fixed(last.score, 3)}`, 'badge ' + last.verdict));
  }
  latestPicture(lane, img);
  const facts = document.createElement('dl');
  const fact = (name, value) => facts.append(element('dt', name), element('dd', value));
  fact('last', last ? `#${last.seq} ${last.name}` : 'none yet');
  fact('OK / NOK', `${lane.ok} / ${lane.nok}` + (lane.failed ? ` · ${lane.failed} unreadable` : ''));
  fact('images/s', fixed(lane.images_per_second, 1));
  fact('latency', `p50 ${fixed(lane.latency_p50_ms, 0)} ms · p95 ${fixed(lane.latency_p95_ms, 0)} ms`);
  fact('source', lane.source + (lane.fault ? ' (fault)' : lane.busy ? ' (busy)' : ''));
  if (!lane.source_connected) fact('not connected', lane.source_error || 'finished');
  if (lane.source_reconnects || lane.frames_dropped) {
    fact('frames', `${lane.frames_dropped} dropped · ${lane.source_reconnects} reconnects`);
  }
  card.append(live, facts);
  if (lane.source.includes('(software trigger)')) {
    const trigger = element('button', 'Trigger');
    trigger.type = 'button';
    trigger.className = 'trigger';
    trigger.disabled = !lane.source_connected;
    trigger.addEventListener('click', () =>
      api(`/v1/station/lanes/${encodeURIComponent(lane.name)}/trigger`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
      }).catch((e) => { $('error').textContent = `trigger ${lane.name}: ${e.message}`; }));
    card.append(trigger);
  }
  for (const sink of lane.sinks) {
    const row = element('div', undefined, 'sink');
    row.dataset.sink = sink.name;
    row.append(element('span', sink.connected ? '● ' : '○ ', sink.connected ? 'up' : 'down'),
               element('span', `${sink.name}: ${sink.connected ? 'connected' : 'retrying'}` +
                       ` · outbox ${sink.pending} · ${sink.reconnects} reconnects`));
    card.append(row);
  }
  return card;
}

function showStation(status) {
  $('station-name').textContent = `station ${status.station} · ${status.lanes.length} lanes · live`;
  $('lanes').replaceChildren(...status.lanes.map(laneCard));
}

// The Station tab exists when the service is a station.
async function detectStation() {
  try {
    await api('/v1/station');
    $('tab-station').hidden = false;
  } catch (e) { /* not a station */ }
}

// --- wiring -----------------------------------------------------------------------------------

$('tab-inspect').addEventListener('click', () => show('inspect'));
$('tab-reports').addEventListener('click', () => show('reports'));
$('tab-station').addEventListener('click', () => show('station'));
$('category').addEventListener('change', describeModel);
$('report-status').addEventListener('change', loadReports);
$('drop').addEventListener('click', () => $('file').click());
$('file').addEventListener('change', () => { if ($('file').files[0]) inspect($('file').files[0]); });
$('drop').addEventListener('dragover', (e) => { e.preventDefault(); $('drop').classList.add('over'); });
$('drop').addEventListener('dragleave', () => $('drop').classList.remove('over'));
$('drop').addEventListener('drop', (e) => {
  e.preventDefault();
  $('drop').classList.remove('over');
  if (e.dataTransfer.files[0]) inspect(e.dataTransfer.files[0]);
});
$('opacity').addEventListener('input', () => { $('overlay').style.opacity = $('opacity').value / 100; });
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('patchvec-token', $('token').value.trim());
  $('token').value = '';
  $('token-form').hidden = true;
  loadCategories();
  detectStation();
});
loadCategories();
detectStation();
