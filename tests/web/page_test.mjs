// The operators' page in headless Chromium: upload a defective and a normal image, check the
// verdict, the heatmap overlay and the similar-image thumbnails; save screenshots.
//   node page_test.mjs URL DEFECTIVE_IMAGE NORMAL_IMAGE SCREENSHOT_DIR [CATEGORY]
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';

const [url, defective, normal, shots, category] = process.argv.slice(2);

// Polls `predicate` in the page until it holds (at most 30 s). Playwright's waitForFunction
// evaluates strings, which the page's Content-Security-Policy rightly forbids.
async function until(page, predicate, argument) {
  for (let i = 0; i < 300; ++i) {
    if (await page.evaluate(predicate, argument)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('timed out waiting for ' + predicate);
}
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run',
         // A name an attacker pointed at this machine (DNS rebinding), without a DNS server.
         '--host-resolver-rules=MAP rebind.example 127.0.0.1'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  const violations = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) violations.push(m.text());
  });
  await page.goto(url);
  await page.waitForSelector('#category option', { state: 'attached' });
  if (category) await page.selectOption('#category', category);

  const upload = async (file, expected) => {
    await page.setInputFiles('#file', file);
    await until(page, (want) => document.querySelector('#verdict').className === want, expected);
    const overlay = await page.getAttribute('#overlay', 'src');
    assert.ok(overlay.startsWith('data:image/png;base64,'), 'heatmap overlay shown');
    await until(page, () => [...document.querySelectorAll('#matches img')]
        .every((img) => img.complete && img.naturalWidth > 0));
    const thumbnails = await page.locator('#matches .match').count();
    assert.ok(thumbnails >= 1 && thumbnails <= 10, `1-10 similar images, got ${thumbnails}`);
    return thumbnails;
  };

  await upload(defective, 'anomalous');
  assert.equal(await page.textContent('#verdict'), 'Anomaly');
  assert.match(await page.textContent('#report'), /reported as #\d+/);
  for (const label of await page.locator('#matches .match').evaluateAll(
           (nodes) => nodes.map((n) => n.dataset.label))) {
    assert.equal(label, 'anomalous', 'an anomaly shows the closest known defects');
  }
  await page.fill('#opacity', '80');
  assert.equal(await page.$eval('#overlay', (img) => img.style.opacity), '0.8');
  await page.screenshot({ path: `${shots}/page_anomaly.png`, fullPage: true });

  const normalCount = await upload(normal, 'normal');
  assert.equal(await page.textContent('#verdict'), 'Normal');
  assert.ok(normalCount >= 1);
  await page.screenshot({ path: `${shots}/page_normal.png`, fullPage: true });

  // Stored XSS: a file name with markup becomes a report's path. It must show as text, run
  // nothing, and add no element to the page.
  const payload = '<img src=x onerror="window.__pwned=1;document.title=\'pwned\'">.png';
  await page.click('#tab-inspect');
  await page.setInputFiles('#file', { name: payload, mimeType: 'image/png',
                                       buffer: readFileSync(defective) });
  await until(page,
              () => document.querySelector('#report').textContent.startsWith('reported as #'));
  await page.click('#tab-reports');
  await page.waitForSelector('#report-rows tr td');
  assert.ok(await page.locator('#report-rows tr').count() >= 2, 'the reports are listed');
  const paths = await page.locator('#report-rows td.path').allTextContents();
  assert.ok(paths.includes(payload), `the name is shown as text: ${paths}`);
  assert.equal(await page.locator('#report-rows img[src="x"]').count(), 0, 'no injected element');
  await page.waitForTimeout(300);  // an onerror handler would have run by now
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no injected script ran');
  assert.notEqual(await page.title(), 'pwned');
  // The Content-Security-Policy forbids inline script, whatever gets into the page.
  const inlineRan = await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.__inline = 1';
    document.body.append(script);
    return window.__inline === 1;
  });
  assert.equal(inlineRan, false, 'inline script is blocked by the policy');
  await page.screenshot({ path: `${shots}/page_reports.png`, fullPage: true });

  // Cross-site request forgery: a page of another origin (another port of this machine) in the
  // operator's browser posts a decision, as a form with a text/plain body shaped like JSON and as
  // a no-cors fetch with JSON sent as text/plain. The report stays open.
  const target = await page.locator('#report-rows tr[data-status="open"]').first()
      .getAttribute('data-id');
  const resolveUrl = new URL(`v1/reports/${target}/resolve`, url).href;
  const attacker = http.createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end(`<!doctype html><title>prize</title>
<form id="f" method="post" enctype="text/plain" action="${resolveUrl}">
<input name='{"resolution":"false_alarm","x":"' value='"}'></form>
<script>
fetch(${JSON.stringify(resolveUrl)}, {method: 'POST', mode: 'no-cors',
  headers: {'Content-Type': 'text/plain'}, body: '{"resolution":"false_alarm"}'})
  .finally(() => document.getElementById('f').submit());
</script>`);
  });
  await new Promise((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  try {
    const evil = await browser.newPage();
    await evil.goto(`http://127.0.0.1:${attacker.address().port}/`);
    for (let i = 0; i < 100 && !evil.url().includes('/resolve'); ++i) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(evil.url().includes('/resolve'), 'the forged form was submitted');
    assert.match(await evil.textContent('body'), /another origin|another site/);
    await evil.close();
  } finally {
    attacker.close();
  }
  const stillOpen = await (await fetch(new URL('v1/reports?status=open', url))).json();
  assert.ok(stillOpen.some((r) => String(r.id) === target), 'forged decisions changed nothing');
  // DNS rebinding: the same service under a name it was not told is refused outright.
  const rebound = await browser.newPage();
  const refused = await rebound.goto(`http://rebind.example:${new URL(url).port}/v1/reports`);
  assert.equal(refused.status(), 421, 'a rebound name gets nothing');
  await rebound.close();

  // The operator's decisions: the newest report is a defect of a named type, the other a false
  // alarm. Both leave the open list and show in the resolved one with who decided.
  const rows = page.locator('#report-rows tr[data-status="open"]');
  const openBefore = await rows.count();
  assert.ok(openBefore >= 2, 'two open reports to decide on');
  const first = rows.nth(0);
  const firstId = await first.getAttribute('data-id');
  await first.locator('input.defect-type').fill('blob');
  await first.locator('button.defect').click();
  await until(page, (id) => !document.querySelector(`#report-rows tr[data-id="${id}"]`), firstId);
  const second = page.locator('#report-rows tr[data-status="open"]').nth(0);
  const secondId = await second.getAttribute('data-id');
  await second.locator('button.false-alarm').click();
  await until(page, (id) => !document.querySelector(`#report-rows tr[data-id="${id}"]`), secondId);
  await page.selectOption('#report-status', 'resolved');
  await until(page, () => document.querySelectorAll('#report-rows tr[data-status="resolved"]')
      .length >= 2);
  const decided = await page.locator('#report-rows td.decision').allTextContents();
  assert.ok(decided.some((t) => t.startsWith('defect: blob')), `a defect: ${decided}`);
  assert.ok(decided.some((t) => t.startsWith('false alarm')), `a false alarm: ${decided}`);
  await page.screenshot({ path: `${shots}/page_resolved.png`, fullPage: true });
  assert.deepEqual(errors, [], 'no JavaScript errors');
  assert.ok(violations.length >= 1, 'the blocked inline script was reported as a CSP violation');
  console.log('page test passed; screenshots in ' + shots);
} finally {
  await browser.close();
}
