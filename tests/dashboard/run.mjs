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
// The Content-Security-Policy allows nothing inline: a refusal is a failure.
page.on("console", m => { if (/Content Security Policy/i.test(m.text())) errors.push(m.text()); });

try {
  await test("nothing is visible without signing in", async () => {
    const api = await fetch(`${base}/api/stats`);
    assert.equal(api.status, 401);
    const shell = await fetch(`${base}/`);
    assert.match(shell.headers.get("content-security-policy"), /script-src 'self'.*frame-ancestors 'none'/);
    assert.doesNotMatch(shell.headers.get("content-security-policy"), /unsafe-inline/);
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
    await page.fill("input[type=search]", "example.com");
    await page.waitForSelector('#app[data-results="20"]');
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    const focused = await page.evaluate(() => document.activeElement.closest("li") ===
      document.querySelectorAll(".results li")[1]);
    assert.ok(focused, "arrow keys move through the results");
    await page.fill("input[type=search]", "customer42@example.com");
    await page.waitForSelector('#app[data-results="1"]');
    await page.screenshot({ path: join(shots, "customers.png"), fullPage: true });
    const started = Date.now();
    await page.keyboard.press("Enter");
    await page.waitForSelector('#app[data-ready="customer"]');
    (timings.customer ||= []).push(Date.now() - started);
    const card = await page.locator("section.card").innerText();
    assert.match(card, /customer42@example\.com/);
    const api = await page.evaluate(async () => (await fetch(
      `/api/profiles/${document.querySelector("section.card dd").textContent}/context`)).json());
    const journeys = await page.locator("section.card [data-journey]").count();
    assert.equal(journeys, api.active_journeys.length, "a line per journey the person is in");
    assert.match(card, api.active_journeys.length ? /since/ : /In no journey/);
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

  await test("a merge can be undone from the context card", async () => {
    // A customer whose store form was matched to their web profile.
    const merged = await page.evaluate(async () => {
      let cursor = "";
      for (;;) {
        const page = await (await fetch(`/api/profiles?limit=200&cursor=${cursor}`)).json();
        for (const p of page.profiles) {
          const full = await (await fetch(`/api/profiles/${p.id}`)).json();
          if ((full.merges || []).some(m => !m.decided && m.via.length > 0)) return full.id;
        }
        if (!page.next_cursor) return null;
        cursor = page.next_cursor;
      }
    });
    assert.ok(merged, "a merged profile in the demo");
    await open(page, `#/customers/${merged}`, "customer");
    const before = await page.locator("ul.merges li").count();
    assert.ok(before >= 1);
    const button = page.locator("li[data-decided=false] button[data-unmerge]").first();
    const cut = await button.getAttribute("data-unmerge");
    await button.click();
    await page.waitForFunction(([sel, n]) => document.querySelectorAll(sel).length < n &&
      document.querySelector('#app[data-ready="customer"]'), ["ul.merges li", before]);
    assert.doesNotMatch(await page.locator("section.card dl").first().innerText(), new RegExp(cut.replace(/[.+]/g, "\\$&")));
  });

  await test("the census heat map shows the need no touchpoint serves", async () => {
    await open(page, "#/touchpoints", "touchpoints");
    const row = page.locator('table.heat tr[data-need="installation"]');
    await row.waitFor();
    assert.match(await row.innerText(), /uncovered/);
    assert.ok(await page.locator("table.heat td.served").count() > 10, "served cells shaded by use");
    assert.match(await page.locator(".recommendations").innerText(), /installation/);
    await page.screenshot({ path: join(shots, "touchpoints.png"), fullPage: true });
  });

  await test("a touchpoint is added, edited and retired in the registry", async () => {
    await open(page, "#/touchpoints", "touchpoints");
    await page.click("button:has-text('Add a touchpoint')");
    const form = page.locator("form.editor");
    await form.locator("input[name=id]").fill("installer-app");
    await form.locator("input[name=name]").fill("Installer app");
    await form.locator("select[name=channel]").selectOption("app");
    await form.locator("input[name=department]").fill("network");
    await form.locator("input[name=needs]").fill("installation");
    await form.locator("button[type=submit]").click();
    // Its need is covered now: no longer "uncovered".
    await page.waitForSelector('table.heat tr[data-need="installation"]:not(.uncovered)');
    const row = page.locator("table.data tbody tr:has(td:text-is('installer-app'))");
    await row.locator("button:has-text('Edit')").click();
    await page.locator("form.editor input[name=name]").fill("Installer app (beta)");
    await page.locator("form.editor button[type=submit]").click();
    await page.waitForSelector("td:text-is('Installer app (beta)')");
    await page.locator("table.data tbody tr:has(td:text-is('installer-app')) button:has-text('Retire')").click();
    await page.waitForSelector('table.heat tr[data-need="installation"].uncovered');
    const status = await page.evaluate(async () => (await (await fetch("/api/touchpoints/installer-app")).json()).status);
    assert.equal(status, "retired");
  });

  await test("the KPI table sorts and exports, the paths Sankey and the funnel draw", async () => {
    await open(page, "#/kpis", "kpis");
    const rows = page.locator(".kpis table.data tbody tr");
    assert.ok(await rows.count() >= 10, "a row per touchpoint");
    const first = await rows.first().locator("td").first().innerText();
    assert.equal(first, "web-shop", "busiest first");
    await page.click(".kpis th button:has-text('Touchpoint')");
    const sorted = await page.locator(".kpis table.data tbody tr td:first-child").allInnerTexts();
    assert.deepEqual(sorted, [...sorted].sort().reverse(), "sorted by name");
    assert.ok(await page.locator("svg.sankey path[data-link]").count() >= 5, "Sankey links");
    assert.ok(await page.locator("svg.sankey rect[data-node]").count() >= 5, "Sankey nodes");
    assert.ok(await page.locator(".funnel .stage").count() >= 3, "funnel stages");
    const width = await page.locator(".funnel .bar").first().evaluate(e => getComputedStyle(e).width);
    assert.ok(parseFloat(width) > 0, `a funnel bar has its width under the CSP: ${width}`);
    const csv = await page.evaluate(async href => (await fetch(href)).text(),
      await page.locator("a:has-text('Export CSV')").getAttribute("href"));
    assert.match(csv.split("\n")[0], /^touchpoint,channel/);
    await page.fill("input[name=segment]", "open_cases > 0 || resolved_cases > 0");
    const started = Date.now();
    await page.click(".filters button:has-text('Apply')");
    await page.waitForSelector("p.muted:has-text('Segment:')");
    (timings["kpis (segment)"] ||= []).push(Date.now() - started);
    await page.screenshot({ path: join(shots, "kpis.png"), fullPage: true });
  });

  await test("a dry-run broadcast lists the suppressed customers with their reasons", async () => {
    await open(page, "#/engagement", "engagement");
    await page.selectOption("select[name=message]", "tv-sport-launch");
    await page.click(".filters button:has-text('Dry run')");
    const table = page.locator("table.suppressed");
    await table.waitFor();
    const text = await table.innerText();
    assert.match(text, /no_channel|no_consent|suppressed/);
    assert.ok(await table.locator("tbody tr").count() >= 5, "suppressed customers listed");
    assert.match(await page.locator(".dry-run-result").innerText(), /nothing is recorded/);
    await page.screenshot({ path: join(shots, "engagement.png"), fullPage: true });
    assert.equal(await page.locator('.journey[data-journey="case-follow-up"]').count(), 1, "the demo's journey");
  });

  await test("a segment is edited after a dry run, paused, resumed and retired on the engagement page", async () => {
    const created = await page.evaluate(async () => (await fetch("/api/segments", { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "lisbon-fans", expression: "traits.city == 'Lisboa'" }) })).status);
    assert.equal(created, 201);
    await open(page, "#/quality", "quality"); // the same hash again would not render anew
    await open(page, "#/engagement", "engagement");
    const row = () => page.locator(".definitions table.data tbody tr:has(td:text-is('lisbon-fans'))");
    await row().locator("button:has-text('Edit')").click();
    const form = page.locator("form.definition-editor");
    const definition = form.locator("textarea[name=definition]");
    assert.match(await definition.inputValue(), /Lisboa/, "the version in force to start from");
    // The API's validation message shows next to the field.
    await definition.fill(JSON.stringify({ name: "lisbon-fans", expression: "traits.city ==" }));
    await form.locator("button:has-text('Dry run')").click();
    await form.locator("p.field-error:not(:empty)").waitFor();
    assert.match(await form.locator("p.field-error").innerText(), /expression|lisbon-fans/);
    await definition.fill(JSON.stringify({ name: "lisbon-fans", expression: "traits.city == 'Porto'" }));
    await form.locator("button:has-text('Dry run')").click();
    await form.locator(".edit-result:has-text('Dry run')").waitFor();
    assert.match(await form.locator(".edit-result").innerText(), /expression/);
    await form.locator("button[type=submit]").click();
    await page.waitForSelector(".definitions tr:has(td:text-is('lisbon-fans')) td:text-is('2')");
    await row().locator("button:has-text('Pause')").click();
    await page.waitForSelector(".definitions tr:has(td:text-is('lisbon-fans')) .pill:text-is('paused')");
    await row().locator("button:has-text('Resume')").click();
    await page.waitForSelector(".definitions tr:has(td:text-is('lisbon-fans')) .pill:text-is('active')");
    await row().locator("button:has-text('Retire')").click();
    await page.waitForSelector(".definitions tr:has(td:text-is('lisbon-fans')) .pill:text-is('retired')");
    const history = await page.evaluate(async () => (await (await fetch("/api/segments/lisbon-fans/versions")).json()));
    assert.equal(history.versions.length, 2);
    assert.deepEqual(history.statuses.map(s => s.status), ["paused", "active", "retired"]);
    await page.screenshot({ path: join(shots, "definitions.png"), fullPage: true });
  });

  await test("a journey is edited with its runs left to finish on their version", async () => {
    const journey = steps => ({ name: "porto-welcome", trigger: { event: "Moved To Porto" },
      steps: [{ type: "wait", duration: "1h", name: steps }, { type: "send", message: "welcome", purpose: "service", channel: "email" }] });
    const created = await page.evaluate(async body => (await fetch("/api/journeys", { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).status, journey("settle"));
    assert.equal(created, 201);
    await open(page, "#/quality", "quality");
    await open(page, "#/engagement", "engagement");
    const row = page.locator(".definitions table.data tbody tr:has(td:text-is('porto-welcome'))");
    await row.locator("button:has-text('Edit')").click();
    const form = page.locator("form.definition-editor[data-kind=journeys]");
    assert.equal(await form.locator("select[name=runs]").inputValue(), "finish", "finishing on their version is the default");
    await form.locator("textarea[name=definition]").fill(JSON.stringify(journey("linger")));
    await form.locator("button:has-text('Dry run')").click();
    await form.locator(".edit-result:has-text('Dry run')").waitFor();
    assert.match(await form.locator(".edit-result").innerText(), /finish on their version/);
    await form.locator("button[type=submit]").click();
    await page.waitForSelector(".definitions tr:has(td:text-is('porto-welcome')) td:text-is('2')");
    const history = await page.evaluate(async () => (await (await fetch("/api/journeys/porto-welcome/versions")).json()));
    assert.deepEqual(history.versions.map(v => v.config.steps[0].name), ["settle", "linger"]);
  });

  await test("accepting a possible match in the review queue merges the two profiles", async () => {
    await open(page, "#/quality", "quality");
    const item = page.locator("tr[data-review]").first();
    await item.waitFor();
    const [one, other] = await item.locator("td strong").allInnerTexts();
    const lookup = async text => {
      const [type, value] = text.split(": ");
      return page.evaluate(async ([t, v]) => (await fetch(`/api/profiles/lookup?${t}=${encodeURIComponent(v)}`)).json(), [type, value]);
    };
    const before = [await lookup(one), await lookup(other)];
    assert.notEqual(before[0].id, before[1].id, "two profiles before");
    await page.screenshot({ path: join(shots, "quality.png"), fullPage: true });
    const id = await item.getAttribute("data-review");
    await item.locator("button[data-decision=accept]").click();
    await page.locator(`tr[data-review="${id}"]`).waitFor({ state: "detached" });
    const after = [await lookup(one), await lookup(other)];
    assert.equal(after[0].id, after[1].id, "one profile after");
  });

  await test("a quarantined message is fixed in place and replayed", async () => {
    await open(page, "#/quality", "quality");
    const heading = page.locator("h2:has-text('Quarantine')");
    const waiting = Number((await heading.innerText()).match(/\((\d+)/)[1]);
    const row = page.locator("table.data tbody tr:has(.replay)").first();
    await row.locator("button:has-text('Replay')").click();
    const editor = row.locator("textarea");
    await editor.waitFor();
    const fixed = JSON.parse(await editor.inputValue());
    fixed.userId = "cust-00042";
    await editor.fill(JSON.stringify(fixed));
    await row.locator("button:has-text('Replay fixed')").click();
    await page.waitForSelector(`h2:has-text('Quarantine (${waiting - 1} waiting)')`);
  });

  await test("each page loads again from the menu (timed)", async () => {
    for (let i = 0; i < 3; i++) {
      for (const [hash, name] of [["#/overview", "overview"], ["#/customers", "customers"],
        ["#/touchpoints", "touchpoints"], ["#/kpis", "kpis"], ["#/engagement", "engagement"], ["#/quality", "quality"], ["#/audit", "audit"]]) {
        await open(page, hash, name);
      }
    }
  });

  await test("each role signs in with its own key and sees only what it may use", async () => {
    const make = async (name, role) => {
      const made = await fetch(`${base}/api/keys`, { method: "POST",
        headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name, role }) });
      assert.equal(made.status, 201);
      return (await made.json()).key;
    };
    const keys = { agent: await make("care-desk", "agent"), marketer: await make("campaigns", "marketer"),
      analyst: await make("bi", "analyst") };
    const menus = { agent: ["Overview", "Customers"],
      marketer: ["Overview", "Customers", "Touchpoints and census", "Journeys and KPIs", "Engagement"],
      analyst: ["Overview", "Touchpoints and census", "Journeys and KPIs"] };
    const found = await (await fetch(`${base}/api/profiles/search?q=customer42@example.com`,
      { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).json();
    const person = found.profiles[0].id;
    for (const role of ["agent", "marketer", "analyst"]) {
      const other = await browser.newContext({ viewport: { width: 1366, height: 860 } });
      const tab = await other.newPage();
      tab.on("pageerror", e => errors.push(`${role}: ${e.message}`));
      await tab.goto(`${base}/#/overview`);
      await tab.fill("input[name=key]", keys[role]);
      await tab.click("form.signin button");
      await tab.waitForSelector('#app[data-ready="overview"]');
      assert.deepEqual(await tab.locator("nav.side a").allInnerTexts(), menus[role], role);
      assert.equal(await tab.locator(".whoami").getAttribute("data-role"), role);
      if (role !== "analyst") {
        await open(tab, `#/customers/${person}`, "customer");
        const card = await tab.locator("section.card").innerText();
        if (role === "agent") assert.match(card, /customer42@example\.com/);
        else {
          assert.doesNotMatch(card, /customer42@example\.com/);
          assert.match(card, /c•••@example\.com/);
        }
        assert.equal(await tab.locator("button[data-unmerge]").count(), 0, `${role} cannot unmerge`);
        await tab.screenshot({ path: join(shots, `customer-as-${role}.png`), fullPage: true });
      } else {
        // A page it may not see sends it to one it may.
        await open(tab, "#/kpis", "kpis");
        await tab.evaluate(() => { location.hash = "#/quality"; });
        await tab.waitForFunction(() => location.hash === "#/overview"
          && document.querySelector("#app").dataset.ready === "overview");
      }
      await other.close();
    }
  });

  await test("the audit log shows who read whose data, filtered by key", async () => {
    await open(page, "#/audit", "audit");
    await page.fill("input[name=actor]", "care-desk");
    await page.click("form.filters button");
    await page.waitForFunction(() => document.querySelector("main").dataset.records !== undefined
      && document.querySelector("main table caption") !== null
      && [...document.querySelectorAll("main td")].some(td => td.textContent === "care-desk"));
    const rows = await page.locator("main table tbody tr").allInnerTexts();
    assert.ok(rows.length >= 1 && rows.every(r => r.includes("care-desk")), rows.join("\n"));
    assert.ok(rows.some(r => r.includes("GET /api/profiles/{id}/context")), rows.join("\n"));
    await page.screenshot({ path: join(shots, "audit.png"), fullPage: true });
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
  const exited = new Promise(done => server.once("exit", done));
  server.kill();
  await exited;
  rmSync(work, { recursive: true, force: true });
}

const median = list => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const summary = Object.fromEntries(Object.entries(timings).map(([p, t]) => [p, { median_ms: median(t), max_ms: Math.max(...t), loads: t.length }]));
writeFileSync(join(here, "timings.json"), JSON.stringify(summary, null, 2) + "\n");
console.log("page loads (ms):", JSON.stringify(summary));
const failed = results.filter(([, r]) => r !== "ok");
console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
