// The PC pay flow in a real browser (headless Debian Chromium driven by playwright-core):
// register, add an address, buy, open the pay page; a second "phone" (WeChat User-Agent)
// opens the QR's URL and confirms on the sandbox page; the first tab must reach the success
// page by itself (polling), also when the platform's notification never comes (the shop asks
// the platform). Then: back and reload after paying never show the QR again, the countdown
// covers the QR with 二维码已失效 at the deadline, and the order detail page. Screenshots at
// 1366 and 390 px go to SCREENSHOT_DIR.
// Usage: node pay_flow.mjs http://127.0.0.1:PORT SCREENSHOT_DIR
import { snap as shoot } from './shots.mjs';
import { WECHAT_UA, check, launch, registerShopper, placeOrder as place } from './shop.mjs';

const base = process.argv[2];
const shots = process.argv[3];
if (!base || !shots) throw new Error('usage: node pay_flow.mjs BASE_URL SCREENSHOT_DIR');
const snap = (page, name) => shoot(page, shots, name);
const placeOrder = (page, goods) => place(page, base, goods);

const browser = await launch();
try {
  const shopper = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const pc = await shopper.newPage();
  await registerShopper(pc, base, 'e2e_' + Date.now());

  // The phone: WeChat scans the QR and pays on the sandbox page.
  async function payOnPhone(page) {
    const qrUrl = await page.getAttribute('#qr-link', 'href');
    const ctx = await browser.newContext({ userAgent: WECHAT_UA });
    const phone = await ctx.newPage();
    await phone.goto(qrUrl);
    check(phone.url().includes('/sandbox/pingpp/phone/'), `scan landed on ${phone.url()}`);
    await phone.click('#confirm [type=submit]');
    await phone.waitForSelector('#done');
    await ctx.close();
  }

  // The shop: two products across on a phone.
  await pc.goto(`${base}/`);
  await snap(pc, 'home');

  // 1. Paid, told by the notification.
  const orderNo = await placeOrder(pc, 2);
  const payUrl = pc.url();
  await snap(pc, 'pay-waiting');
  await payOnPhone(pc);
  await pc.waitForURL(/\/home\/order\/payresult\?order_sn=/, { timeout: 15000 });
  const heading = (await pc.textContent('#result h1, #result h2')).trim();
  const payName = (await pc.textContent('#pay-name')).trim();
  check(heading === '支付成功' && payName === '微信支付', `result: ${heading} ${payName}`);
  await snap(pc, 'pay-paid');

  // Back leaves the result for the shop, not for a stale QR; reloading the pay page shows
  // the result.
  await pc.goBack();
  check(!/\/home\/order\/(pay|payresult)\?/.test(pc.url()), `back went to ${pc.url()}`);
  check((await pc.locator('#qr').count()) === 0, 'a QR after going back');
  await pc.goto(payUrl);
  check(/\/home\/order\/payresult\?/.test(pc.url()), `paid pay page stayed at ${pc.url()}`);
  check((await pc.textContent('#result h1')).trim() === '支付成功', 'reloaded pay page');

  // 2. Paid, the notification lost: the polling page has the shop ask the platform.
  const lostNo = await placeOrder(pc, 3);
  const fault = await pc.request.post(`${base}/sandbox/control/faults`, {
    data: { prefix: lostNo, never_deliver: true },
  });
  check(fault.status() === 204, `faults: ${fault.status()}`);
  await payOnPhone(pc);
  const paidAt = Date.now();
  await pc.waitForURL(/\/home\/order\/payresult\?order_sn=/, { timeout: 10000 });
  const lostMs = Date.now() - paidAt;
  check((await pc.textContent('#result h1')).trim() === '支付成功', 'lost notification result');

  // 3. The deadline passes on the pay page: the QR is covered.
  // Its own context (same shopper) so the fake clock touches no other page.
  const lateCtx = await browser.newContext({ storageState: await shopper.storageState() });
  await lateCtx.clock.install();
  const late = await lateCtx.newPage();
  const lateNo = await placeOrder(late, 4);
  check(!(await late.isVisible('#qr-expired')), 'QR covered before the deadline');
  await late.clock.fastForward('31:00');
  await late.waitForSelector('#qr-expired', { state: 'visible' });
  check((await late.textContent('#qr-expired')).includes('二维码已失效'), 'no 二维码已失效');
  await snap(late, 'pay-expired');
  await lateCtx.close();

  // 4. 我的订单 → the paid order's detail.
  await pc.goto(`${base}/home/orders`);
  await pc.click(`a.order-link:has-text("${orderNo}")`);
  await pc.waitForURL(/\/home\/order\/detail\?order_sn=/);
  check((await pc.textContent('#order-status')).trim() === '已支付', 'detail status');
  await snap(pc, 'order-detail');

  console.log(JSON.stringify({ orderNo, heading, payName, lostNo, lostMs, lateNo }));
} finally {
  await browser.close();
}
