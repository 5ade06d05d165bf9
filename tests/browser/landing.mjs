// The landing page in headless Chromium against a live exporter (tests/checks/70-landing-page.sh
// runs it inside the check's network namespace). Asserts that the page names the leaking
// process and port, updates when the leak grows, shows the full TCP and UNIX listeners
// and the UDP receiver dropping (its row exactly as `ss -uam` reads it, before and after
// it drops more), loads nothing from elsewhere, logs no JavaScript error and fits a
// phone's width; keeps desktop and phone screenshots.
// Environment: BASE (the exporter's URL), GROW_PID (the leak to grow with SIGUSR1),
// UDP_PID (the UDP scene, sent 100 more datagrams on SIGUSR1), OUT.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.BASE;
const out = process.env.OUT;
const growPid = Number(process.env.GROW_PID);
const udpPid = Number(process.env.UDP_PID);
const failures = [];
function check(ok, what) {
  console.log(`${ok ? "ok" : "FAIL"}: ${what}`);
  if (!ok) failures.push(what);
}

// The skmem figures `ss -uam` reads for the UDP socket on 127.0.0.1:PORT (this process
// runs in the check's namespace): r (queue bytes), rb (buffer bytes), d (drops).
function skmem(port) {
  const line = execFileSync("ss", ["-uamnOH", "sport", "=", `:${port}`], { encoding: "utf8" }).trim();
  const figures = /skmem:\(([^)]*)\)/.exec(line);
  if (line.split("\n").length !== 1 || !figures) throw new Error(`ss -uam for :${port}: ${line}`);
  const value = (key) => Number(new RegExp(`(?:^|,)${key}(\\d+)(?:,|$)`).exec(figures[1])[1]);
  return { r: value("r"), rb: value("rb"), d: value("d") };
}

const profile = mkdtempSync(join(tmpdir(), "sockdiag-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  const foreign = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });

  await page.goto(base + "/");
  const leakRow = () => [...document.querySelectorAll("#close-wait tbody tr")]
    .map((tr) => [...tr.cells].map((td) => td.textContent))
    .find((cells) => cells[0] === "leaky-app");
  await page.waitForFunction(leakRow, null, { timeout: 20000 });
  const first = await page.evaluate(leakRow);
  check(first[1] === "inbound" && first[2] === "8080",
    `the CLOSE_WAIT table names leaky-app inbound :8080 (${first.join(" | ")})`);
  const before = Number(first[3]);

  process.kill(growPid, "SIGUSR1");
  // Growth is between the last two polls: wait for the poll that saw the 5 new sockets.
  await page.waitForFunction(([fn, before]) => {
    const row = eval(fn)();
    return row && Number(row[3]) >= before + 5 && row[4].startsWith("+") && row[4] !== "+0" &&
      document.getElementById("headline").textContent.startsWith("CLOSE_WAIT growing: leaky-app :8080 inbound, +");
  }, [`(${leakRow})`, before], { timeout: 20000 });
  const grown = await page.evaluate(leakRow);
  check(Number(grown[3]) >= before + 5, `the leak grew on the page: ${before} -> ${grown[3]} (${grown[4]}, ${grown[5]})`);
  const headline = await page.textContent("#headline");
  check(headline.startsWith("CLOSE_WAIT growing: leaky-app :8080 inbound, +"), `headline: ${headline}`);
  const listener = await page.textContent("#listeners tbody tr:first-child");
  check(listener.includes("cpp-server") && listener.includes("8081"), `the fullest listener first: ${listener}`);
  const unix = await page.textContent("#unix-listeners tbody tr:first-child");
  check(unix.includes("php-fpm") && unix.includes("@sockdiag-page-fpm") && unix.includes("125%"),
    `the full UNIX listener first: ${unix}`);
  const findings = await page.textContent("#findings");
  check(findings.includes("UNIX accept queue full: php-fpm @sockdiag-page-fpm, 5 waiting of 4"),
    `the UNIX finding: ${findings}`);

  const health = await page.textContent("#health");
  check(health.includes("poll errors: none"), `poll health: ${health}`);
  await page.screenshot({ path: join(out, "landing-page-desktop.png"), fullPage: true });

  // The UDP receiver (after the desktop screenshot, which shows the leak growing and this
  // row steady): one row, its cells and class, with the findings of the same render.
  const udpView = (growth) => {
    const row = [...document.querySelectorAll("#udp-drops tbody tr")]
      .map((tr) => [...tr.cells].map((td) => td.textContent).concat(tr.className))
      .find((cells) => cells[0] === "udp-sink");
    if (!row || row[4] !== growth) return null;
    return { row, text: document.getElementById("headline").textContent + "\n" +
      document.getElementById("findings").textContent };
  };
  // Once a poll has a base (growth "+0"), the row is the receiver as ss reads it.
  const udpBefore = skmem(8125);
  check(udpBefore.d > 900, `the UDP receiver dropped most of 1,000 datagrams (ss d ${udpBefore.d})`);
  const udpSteady = await (await page.waitForFunction(udpView, "+0", { timeout: 20000 })).jsonValue();
  const wantSteady = ["udp-sink", "inbound", "8125", `${udpBefore.d}`, "+0", `${udpBefore.r}`, `${udpBefore.rb}`, ""];
  check(JSON.stringify(udpSteady.row) === JSON.stringify(wantSteady),
    `the UDP row equals ss -uam: ${udpSteady.row.join(" | ")} (want ${wantSteady.join(" | ")})`);
  // 100 more datagrams to a full buffer: every one dropped, shown as growth, hot.
  process.kill(udpPid, "SIGUSR1");
  const udpGrown = await (await page.waitForFunction(udpView, "+100", { timeout: 20000 })).jsonValue();
  const udpAfter = skmem(8125);
  check(udpAfter.d === udpBefore.d + 100 && udpAfter.r === udpBefore.r, `ss: 100 more dropped (${udpBefore.d} -> ${udpAfter.d})`);
  const wantGrown = ["udp-sink", "inbound", "8125", `${udpAfter.d}`, "+100", `${udpAfter.r}`, `${udpAfter.rb}`, "hot"];
  check(JSON.stringify(udpGrown.row) === JSON.stringify(wantGrown),
    `the UDP row after 100 more: ${udpGrown.row.join(" | ")} (want ${wantGrown.join(" | ")})`);
  const udpFinding = `UDP drops: udp-sink :8125 dropped 100 datagrams, queue ${udpAfter.r} of ${udpAfter.rb} bytes`;
  check(udpGrown.text.includes(udpFinding),
    `the UDP finding "${udpFinding}" in: ${udpGrown.text}`);

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page fits a 390 px phone without sideways scrolling (overflow ${overflow} px)`);
  await page.screenshot({ path: join(out, "landing-page-phone.png"), fullPage: true });

  check(errors.length === 0, `no JavaScript console error ${JSON.stringify(errors)}`);
  check(foreign.length === 0, `nothing loaded from elsewhere ${JSON.stringify(foreign)}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (failures.length > 0) {
  console.log(`${failures.length} failed`);
  process.exit(1);
}
