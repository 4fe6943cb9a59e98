// The PC pay flow in a real browser (headless Debian Chromium driven by playwright-core):
// register, add an address, buy, open the pay page; a second "phone" (WeChat User-Agent)
// opens the QR's URL and confirms on the sandbox page; the first tab must reach the success
// page by itself (polling). Usage: node pay_flow.mjs http://127.0.0.1:PORT
import { chromium } from 'playwright-core';

const base = process.argv[2];
if (!base) throw new Error('usage: node pay_flow.mjs BASE_URL');
const WECHAT_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const pc = await (await browser.newContext()).newPage();
  const user = 'e2e_' + Date.now();
  await pc.goto(`${base}/home/register`);
  await pc.fill('#username', user);
  await pc.fill('#password', 'secret-123');
  await pc.fill('#password2', 'secret-123');
  await pc.click('#register-form [type=submit]');
  await pc.goto(`${base}/home/address`);
  for (const [id, v] of [['name', '王小明'], ['mobile', '13800138000'], ['province', '上海市'],
                         ['city', '上海市'], ['district', '浦东新区'], ['detail', '世纪大道 100 号']]) {
    await pc.fill(`#${id}`, v);
  }
  await pc.click('#address-form [type=submit]');
  await pc.goto(`${base}/home/goods/2`);
  await pc.click('#add-to-cart [type=submit]');
  await pc.goto(`${base}/home/order/checkout`);
  await pc.click('#place-order [type=submit]');
  await pc.waitForURL(/\/home\/order\/pay\?order_sn=/);
  const orderNo = (await pc.textContent('#order-no')).trim();
  if (!(await pc.isVisible('#qr svg'))) throw new Error('no QR on the pay page');
  const qrUrl = await pc.getAttribute('#qr-link', 'href');

  // The phone: WeChat scans the QR and pays on the sandbox page.
  const phone = await (await browser.newContext({ userAgent: WECHAT_UA })).newPage();
  await phone.goto(qrUrl);
  if (!phone.url().includes('/sandbox/pingpp/phone/')) throw new Error(`scan landed on ${phone.url()}`);
  await phone.click('#confirm [type=submit]');
  await phone.waitForSelector('#done');

  // The PC tab notices by polling and shows the result.
  await pc.waitForURL(/\/home\/order\/payresult\?order_sn=/, { timeout: 15000 });
  const heading = (await pc.textContent('#result h1, #result h2')).trim();
  const payName = (await pc.textContent('#pay-name')).trim();
  if (heading !== '支付成功' || payName !== '微信支付') throw new Error(`result: ${heading} ${payName}`);
  console.log(JSON.stringify({ orderNo, heading, payName }));
} finally {
  await browser.close();
}
