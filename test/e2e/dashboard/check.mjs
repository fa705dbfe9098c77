// Loads the tandem dashboard in headless Chromium, checks that it shows the
// given running apps with their identities and components, and saves a
// screenshot. Usage: node check.mjs URL APP_ID[,APP_ID...] SCREENSHOT.png
// Exits non-zero (with a reason on stderr) if anything is missing.
import { chromium } from "playwright-core";

const [url, ids, shot] = process.argv.slice(2);
if (!url || !ids || !shot) {
  console.error("usage: node check.mjs URL APP_ID[,APP_ID...] SCREENSHOT.png");
  process.exit(2);
}
const appIDs = ids.split(",");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 20000 });
  await page.waitForSelector("body[data-loaded=true]", { timeout: 20000 });
  for (const id of appIDs) {
    await page.waitForSelector(`section[data-app-id="${id}"]`, { timeout: 20000 });
    const text = await page.locator(`section[data-app-id="${id}"]`).innerText();
    const want = [id, `spiffe://public/ns/default/${id}`, "statestore", "state.sqlite", "healthy", "invocations sent"];
    if (id === appIDs[0]) want.push(`${appIDs[1]}: `); // the first app called the second
    for (const w of want) {
      if (!text.includes(w)) {
        console.error(`app ${id}: the dashboard does not show ${JSON.stringify(w)}; it shows:\n${text}`);
        failed = true;
      }
    }
    if (!/ready/i.test(text)) {
      console.error(`app ${id}: no component is shown as ready:\n${text}`);
      failed = true;
    }
  }
  const sentry = await page.locator("#sentry").innerText();
  if (!sentry.includes("running")) {
    console.error(`sentry card: ${sentry}`);
    failed = true;
  }
  if (errors.length) {
    console.error("page errors: " + errors.join("; "));
    failed = true;
  }
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ apps: appIDs, sentry, screenshot: shot }));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
