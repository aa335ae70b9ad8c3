// Drive the exported page in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core: wait until it is ready, click Train, wait until it is done,
// download model.onnx, save a screenshot, and write the page's results as JSON.
//
//   node web/e2e.mjs URL --json OUT.json --screenshot OUT.png [--model OUT.onnx]
//        [--bad-file BAD.npz] [--data MINE.npz] [--timeout SECONDS] [--chromium PATH]
import { writeFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const argv = process.argv.slice(2);
const opt = { url: argv[0], timeout: 600, chromium: '/usr/bin/chromium' };
for (let i = 1; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase())] = argv[i + 1];
if (!opt.url || !opt.json) {
  console.error('usage: node web/e2e.mjs URL --json OUT.json --screenshot OUT.png [--model OUT.onnx] [--bad-file F] [--timeout S]');
  process.exit(2);
}
const ms = Number(opt.timeout) * 1000;

const browser = await chromium.launch({
  executablePath: opt.chromium, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const out = { console: [], requests: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
  page.on('console', m => out.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', e => out.console.push(`pageerror: ${e.message}`));
  page.on('request', r => out.requests.push(r.url()));
  await page.goto(opt.url);
  await page.waitForFunction(() => ['ready', 'error'].includes(window.dslc?.state), null, { timeout: ms });
  if (opt.badFile) {        // the file picker refuses data that does not fit, with a plain message
    await page.setInputFiles('#file', opt.badFile);
    await page.waitForFunction(() => window.dslc.state === 'error', null, { timeout: 30000 });
    out.badFileError = await page.textContent('#error');
    await page.reload();
    await page.waitForFunction(() => ['ready', 'error'].includes(window.dslc?.state), null, { timeout: ms });
  }
  if (opt.data) {           // train on the user's own file, chosen with the picker
    await page.setInputFiles('#file', opt.data);
    await page.waitForFunction(() => document.getElementById('info').textContent.includes('data:') ||
                               window.dslc.state === 'error', null, { timeout: 30000 });
  }
  const t0 = Date.now();
  if (await page.evaluate(() => window.dslc.state) === 'ready') {
    await page.click('#train');
    await page.waitForFunction(() => ['done', 'error'].includes(window.dslc.state), null, { timeout: ms, polling: 500 });
  }
  out.seconds = (Date.now() - t0) / 1000;
  Object.assign(out, await page.evaluate(() => ({
    state: window.dslc.state, error: window.dslc.error, history: window.dslc.history,
    steps: window.dslc.steps, final: window.dslc.final,
    result: document.getElementById('result').textContent,
  })));
  if (out.state === 'done' && opt.model) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    out.downloadName = download.suggestedFilename();
    await download.saveAs(opt.model);
  }
  if (opt.screenshot) await page.screenshot({ path: opt.screenshot, fullPage: true });
} finally {
  await browser.close();
  await writeFile(opt.json, JSON.stringify(out));
}
console.log(`page state ${out.state} after ${out.seconds}s` + (out.error ? `: ${out.error}` : ''));
