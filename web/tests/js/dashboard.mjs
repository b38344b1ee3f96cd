// Drives the dashboard in headless Chromium, step by step with the Rust test
// on the other end of stdin/stdout:
//
//   node dashboard.mjs <dashboard url> <token> <chromium> <screenshot dir>
//
// prints `ready` once the page shows the stream, its tail and its dead
// letter; waits for `published <entry id>` and prints `tailed` once that
// entry is in the live tail; clicks Retry and prints `retried` once the dead
// letter is gone from the page; waits for `done`, then exits 0. Any failure
// is printed to stderr with a non-zero exit.

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [url, token, executablePath, shots] = process.argv.slice(2);
const STEP = 15000;
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function expect(prefix) {
  const { value, done } = await lines.next();
  if (done || !value.startsWith(prefix)) throw new Error(`expected "${prefix}…" from the test, got ${done ? "the end" : JSON.stringify(value)}`);
  return value.slice(prefix.length).trim();
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in CI has no user namespace sandbox; /dev/shm may be small in containers.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("requestfailed", (r) => {
    // Aborted streams (the tail being replaced) are expected.
    if (!r.failure()?.errorText.includes("ERR_ABORTED")) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.setDefaultTimeout(STEP);

  // The token once in the address, then a cookie; the page itself from /.
  await page.goto(`${url}/?token=${encodeURIComponent(token)}`);
  if (new URL(page.url()).search !== "") throw new Error(`not sent back to / after the token: ${page.url()}`);
  const row = page.locator('#streams tr[data-stream="contextual"]');
  await row.waitFor();
  await row.click();
  await page.locator("#tail-list .entry").first().waitFor();
  await page.locator("#dlq-list .letter").first().waitFor();
  if ((await page.locator("#dlq-list img").count()) !== 0) throw new Error("markup from Redis was rendered as markup");
  if (!(await page.locator("#dlq-list .letter").first().textContent()).includes("<img src=x")) throw new Error("the error text is not shown as text");
  const dead = (await row.locator("td.dead").textContent()).trim();
  if (dead !== "1") throw new Error(`the streams table shows ${dead} dead letters, not 1`);
  console.log("ready");

  const entry = await expect("published ");
  const tailed = page.locator(`#tail-list .entry[data-entry="${entry}"]`);
  await tailed.waitFor();
  const text = await tailed.textContent();
  if (!text.includes("file.uploaded") || !text.includes('"n": 42')) throw new Error(`the tail shows ${JSON.stringify(text)}`);
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, "dashboard.png"), fullPage: true });
  console.log("tailed");

  await page.locator("#dlq-list .letter button.retry").first().click();
  await page.locator("#dlq-list .letter").waitFor({ state: "detached" });
  // The figures follow: no dead letter left in the table's next update.
  await page.waitForFunction(() => document.querySelector('#streams tr[data-stream="contextual"] td.dead')?.textContent.trim() === "0");
  await page.selectOption("#subject", "contextual/file.uploaded");
  await page.locator("#diff .verdict").waitFor();
  await page.locator("#schemas").screenshot({ path: join(shots, "dashboard-schemas.png") });
  console.log("retried");

  await expect("done");
  if (problems.length) throw new Error(problems.join("\n"));
} catch (e) {
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
// The test's end of stdin stays open: leave without waiting for it.
process.exit();
