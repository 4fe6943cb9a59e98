// The admin's 退款 and 发货 in a real browser: the refund is refused until 确认 is ticked,
// the refund's status changes on the page without a reload (the refunds.json poll), then
// the partly refunded order is shipped with carrier and tracking number.
// Usage: node admin_refund.mjs BASE_URL USERNAME PASSWORD ORDER_ID
import { chromium } from 'playwright-core';

const [base, user, password, id] = process.argv.slice(2);
if (!id) throw new Error('usage: node admin_refund.mjs BASE_URL USER PASSWORD ORDER_ID');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const text = async (page, sel) => ((await page.textContent(sel)) || '').trim();
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/admin/orders/${id}`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('#admin-login [type=submit]');
  await page.waitForURL(new RegExp(`/admin/orders/${id}$`));
  const hint = await text(page, '#refund-hint');
  await page.fill('#refund-amount', '18.00');
  await page.fill('#refund-reason', '少发一件');
  await page.click('#action-refund');
  await page.waitForSelector('#error-confirm');
  const refused = await text(page, '#error-confirm');
  await page.check('#refund-confirm');
  await page.click('#action-refund');
  await page.waitForURL(/done=refund/);
  const before = await text(page, '#refunds .refund-status');
  let reloads = 0;
  page.on('load', () => { reloads += 1; });
  await page.waitForFunction(
    () => document.querySelector('#refunds .refund-status')?.textContent.trim() === '已退款',
    null, { timeout: 20000 });
  const badge = await text(page, '#order-status');
  const reloadsWhileWaiting = reloads;
  await page.reload();
  await page.selectOption('#ship-carrier', '顺丰速运');
  await page.fill('#ship-tracking', 'SF1234567890');
  await page.click('#action-deliver');
  await page.waitForURL(/done=deliver/);
  console.log(JSON.stringify({
    hint, refused, before, reloads: reloadsWhileWaiting, badge,
    flash: await text(page, '#flash'),
    status: await text(page, '#order-status'),
    tracking: await text(page, '#shipment-tracking'),
  }));
} finally {
  await browser.close();
}
