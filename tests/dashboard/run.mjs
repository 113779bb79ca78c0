// End-to-end tests of the dashboard in a real headless Chromium (Debian's, driven by
// playwright-core): the demo company's data served by the real binary. Screenshots of
// each page go to tests/dashboard/screenshots/, page-load timings to timings.json.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const bin = process.env.UNAVOCE_BIN || join(root, "target/debug/unavoce");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const ADMIN_KEY = "dashboard-test-admin-key-0001";
const WRITE_KEY = "dashboard-test-write-key-0001";
const shots = join(here, "screenshots");
mkdirSync(shots, { recursive: true });

const freePort = () => new Promise(done => {
  const server = createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address();
    server.close(() => done(port));
  });
});

async function waitFor(check, what, ms = 20_000) {
  const until = Date.now() + ms;
  for (;;) {
    try { if (await check()) return; } catch { /* not yet */ }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

const work = mkdtempSync(join(tmpdir(), "unavoce-dashboard-"));
const data = join(work, "demo");
execFileSync(bin, ["demo", "--no-serve", "--customers", "800", "--data", data], { stdio: "ignore" });
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(bin, ["serve", "--data", data, "--listen", `127.0.0.1:${port}`,
  "--admin-key", ADMIN_KEY, "--write-key", WRITE_KEY], { stdio: "ignore", env: { ...process.env, UNAVOCE_LOG: "warn" } });
await waitFor(async () => (await fetch(`${base}/healthz`)).ok, "the server");

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const timings = {};
const results = [];

async function test(name, body) {
  try {
    await body();
    results.push([name, "ok"]);
    console.log(`ok   ${name}`);
  } catch (error) {
    results.push([name, error]);
    console.log(`FAIL ${name}\n     ${error.stack || error}`);
  }
}

/** Opens a page by its hash and waits until it is drawn; records how long it took. */
async function open(page, hash, ready) {
  const started = Date.now();
  await page.evaluate(h => { location.hash = h; }, hash);
  await page.waitForSelector(`#app[data-ready="${ready}"]`, { timeout: 10_000 });
  const took = Date.now() - started;
  (timings[ready] ||= []).push(took);
  return took;
}

const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
const page = await context.newPage();
const errors = [];
page.on("pageerror", e => errors.push(e.message));

try {
  await test("nothing is visible without signing in", async () => {
    const api = await fetch(`${base}/api/stats`);
    assert.equal(api.status, 401);
    await page.goto(`${base}/#/overview`);
    await page.waitForSelector("form.signin");
    assert.equal(await page.locator(".tile").count(), 0);
    await page.fill("input[name=key]", "not-the-key");
    await page.click("form.signin button");
    await page.waitForSelector("form.signin [role=alert]:has-text('not the admin key')");
    await page.screenshot({ path: join(shots, "sign-in.png") });
  });

  await test("signing in shows the overview: tiles and events per channel over time", async () => {
    await page.fill("input[name=key]", ADMIN_KEY);
    const started = Date.now();
    await page.click("form.signin button");
    await page.waitForSelector('#app[data-ready="overview"]');
    (timings.overview ||= []).push(Date.now() - started);
    const events = await page.locator('[data-tile="events"] .value').innerText();
    assert.ok(Number(events.replace(/\D/g, "")) > 5_000, `events tile: ${events}`);
    assert.equal(await page.locator(".tile").count(), 7);
    assert.ok(await page.locator("svg.chart polygon").count() >= 3, "a band per channel");
    const legend = await page.locator(".legend").innerText();
    assert.match(legend, /web/);
    await page.click("button:has-text('By touchpoint')");
    await page.waitForSelector(".legend:has-text('web-shop')");
    await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });
  });

  await test("a demo customer is found by e-mail, with their card and cross-channel timeline", async () => {
    await open(page, "#/customers", "customers");
    await page.fill("input[type=search]", "customer42@example.com");
    await page.waitForSelector('#app[data-results="1"]');
    await page.screenshot({ path: join(shots, "customers.png"), fullPage: true });
    const started = Date.now();
    await page.keyboard.press("Enter");
    await page.waitForSelector('#app[data-ready="customer"]');
    (timings.customer ||= []).push(Date.now() - started);
    const card = await page.locator("section.card").innerText();
    assert.match(card, /customer42@example\.com/);
    assert.match(card, /Next best action/);
    assert.match(card, /Consents/);
    const items = await page.locator("ol.timeline li").count();
    assert.ok(items >= 5, `${items} timeline items`);
    const channels = new Set(await page.locator("ol.timeline li").evaluateAll(
      lis => lis.map(li => li.dataset.channel).filter(c => c && c !== "none")));
    assert.ok(channels.size >= 2, `channels on the timeline: ${[...channels]}`);
    assert.ok(await page.locator("ol.timeline .icon svg").count() >= items, "an icon per interaction");
    await page.screenshot({ path: join(shots, "customer.png"), fullPage: true });
  });

  await test("each page loads again from the menu (timed)", async () => {
    for (let i = 0; i < 3; i++) {
      await open(page, "#/overview", "overview");
      await open(page, "#/customers", "customers");
    }
  });

  await test("signing out ends the session", async () => {
    await page.click("button.signout");
    await page.waitForSelector("form.signin");
    const status = await page.evaluate(async () => (await fetch("/api/stats")).status);
    assert.equal(status, 401);
  });

  await test("no script error on any page", async () => {
    assert.deepEqual(errors, []);
  });
} finally {
  await browser.close();
  server.kill();
  rmSync(work, { recursive: true, force: true });
}

const median = list => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const summary = Object.fromEntries(Object.entries(timings).map(([p, t]) => [p, { median_ms: median(t), max_ms: Math.max(...t), loads: t.length }]));
writeFileSync(join(here, "timings.json"), JSON.stringify(summary, null, 2) + "\n");
console.log("page loads (ms):", JSON.stringify(summary));
const failed = results.filter(([, r]) => r !== "ok");
console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
