// The operators' page in headless Chromium: upload a defective and a normal image, check the
// verdict, the heatmap overlay and the similar-image thumbnails; save screenshots.
//   node page_test.mjs URL DEFECTIVE_IMAGE NORMAL_IMAGE SCREENSHOT_DIR [CATEGORY]
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const [url, defective, normal, shots, category] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('#category option', { state: 'attached' });
  if (category) await page.selectOption('#category', category);

  const upload = async (file, expected) => {
    await page.setInputFiles('#file', file);
    await page.waitForFunction(
        (want) => document.querySelector('#verdict').className === want, expected);
    const overlay = await page.getAttribute('#overlay', 'src');
    assert.ok(overlay.startsWith('data:image/png;base64,'), 'heatmap overlay shown');
    await page.waitForFunction(() => [...document.querySelectorAll('#matches img')]
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

  await page.click('#tab-reports');
  await page.waitForSelector('#report-rows tr td');
  assert.ok(await page.locator('#report-rows tr').count() >= 1, 'the report is listed');
  await page.screenshot({ path: `${shots}/page_reports.png`, fullPage: true });
  assert.deepEqual(errors, [], 'no JavaScript errors');
  console.log('page test passed; screenshots in ' + shots);
} finally {
  await browser.close();
}
