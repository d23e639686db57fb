// The Station tab in headless Chromium: images dropped into a running station's folder appear
// live (pushed by Server-Sent Events) with their heatmap, verdict, counts and the sink's state; a
// file name with markup is shown as text. Saves a screenshot.
//   node station_test.mjs URL FOLDER DEFECTIVE_IMAGE NORMAL_IMAGE SCREENSHOT_DIR
import assert from 'node:assert/strict';
import { copyFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, folder, defective, normal, shots] = process.argv.slice(2);

async function until(page, predicate, argument) {
  for (let i = 0; i < 300; ++i) {
    if (await page.evaluate(predicate, argument)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('timed out waiting for ' + predicate);
}

// As a camera's software would: written under a .part name, renamed in.
function drop(image, name) {
  copyFileSync(image, join(folder, name + '.part'));
  renameSync(join(folder, name + '.part'), join(folder, name));
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('#tab-station:not([hidden])');
  await page.click('#tab-station');
  await page.waitForSelector('.lane[data-lane="main"]');
  assert.match(await page.textContent('.lane dl'), /none yet/);

  drop(normal, 'part-001.png');
  await until(page, () => /#1 part-001\.png/.test(document.querySelector('.lane dl').textContent));
  drop(defective, 'part-002.png');
  await until(page, () => /#2 part-002\.png/.test(document.querySelector('.lane dl').textContent));
  await until(page, () => {
    const img = document.querySelector('.lane .live img');
    return img && img.complete && img.naturalWidth > 0;
  });
  const badge = await page.textContent('.lane .badge');
  assert.match(badge, /^(OK|NOK) · \d+\.\d{3}$/, `a verdict and a score: ${badge}`);
  assert.match(await page.textContent('.lane dl'), /OK \/ NOK2 \/ 0|OK \/ NOK1 \/ 1|OK \/ NOK0 \/ 2/);
  // The webhook's endpoint is down: the results wait in the outbox, the sink says it retries.
  await until(page, () => /retrying · outbox [1-9]/.test(document.querySelector('.lane .sink').textContent));

  // A file name with markup is data: shown as text, nothing injected, nothing run.
  const payload = '<img src=x onerror="window.__pwned=1">.png';
  drop(normal, payload);
  await until(page, (p) => document.querySelector('.lane dl').textContent.includes(p), payload);
  assert.equal(await page.locator('.lane img[src="x"]').count(), 0, 'no injected element');
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no injected script ran');
  // The camera lanes: frames from the simulated camera shown as they are inspected; a camera that
  // is not there says why, and its Trigger button is off until it is connected.
  const camera = '.lane[data-lane="cam"]';
  await until(page, (c) => /#\d+ frame-\d+\.png/.test(document.querySelector(`${c} dl`).textContent),
              camera);
  assert.match(await page.textContent(`${camera} dl`), /camera Fake_1 \(free-run\)/);
  assert.equal(await page.locator(`${camera} button.trigger`).count(), 0, 'free-run: no trigger');
  const gone = '.lane[data-lane="gone"]';
  await until(page, (g) => /not connected.*No-Such-Camera not found/.test(
    document.querySelector(`${g} dl`).textContent), gone);
  assert.equal(await page.locator(`${gone} button.trigger[disabled]`).count(), 1);
  await page.screenshot({ path: `${shots}/station.png`, fullPage: true });
  assert.deepEqual(errors, [], 'no JavaScript errors');
  console.log('station page test passed; screenshot in ' + shots);
} finally {
  await browser.close();
}
