// The admin console in a real browser: log in, filter the orders by status, open one (a
// screenshot of it at 1366 and 390 px goes to SCREENSHOT_DIR when given).
// Usage: node admin_flow.mjs BASE_URL USERNAME PASSWORD EXPECTED_ORDER_NO [SCREENSHOT_DIR]
import { chromium } from 'playwright-core';
import { snap } from './shots.mjs';

const [base, user, password, expected, shots] = process.argv.slice(2);
if (!expected) throw new Error('usage: node admin_flow.mjs BASE_URL USER PASSWORD ORDER_NO');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/admin/orders`);
  if (!page.url().includes('/admin/login')) throw new Error(`not sent to login: ${page.url()}`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('#admin-login [type=submit]');
  await page.waitForURL(/\/admin\/orders/);
  await page.selectOption('#order-filter select[name=status]', '2');
  await page.click('#order-filter [type=submit]');
  await page.waitForURL(/status=2/);
  const rows = await page.locator('.order-row').count();
  const first = (await page.textContent('.order-row .order-link')).trim();
  if (rows !== 1 || first !== expected) throw new Error(`filter gave ${rows} rows, first ${first}`);
  await page.click('.order-row .order-link');
  await page.waitForURL(/\/admin\/orders\/\d+$/);
  const heading = (await page.textContent('#order-no')).trim();
  if (!heading.includes(expected)) throw new Error(`opened ${heading}`);
  const entries = await page.locator('#timeline .timeline-entry').count();
  if (shots) await snap(page, shots, 'admin-order');
  console.log(JSON.stringify({ rows, opened: expected, timeline: entries }));
} finally {
  await browser.close();
}
