// The shop's own cashier (cashier = "direct") in a real browser (headless Chromium driven
// by playwright-core). A PC shopper's pay page waits while a "phone" opens its QR:
// 1. with a WeChat User-Agent: the Official Account OAuth (sandbox) → the cashier page →
//    微信支付 → the sandbox's WeixinJSBridge sheet → 确认支付 → the cashier says 支付成功;
// 2. with an Alipay User-Agent: the shop's precreate → the sandbox Alipay page → 确认支付.
// Each time the PC page must reach 支付成功 by itself. 3. The shopper on a phone browser:
// the pay page offers 支付宝 (wap.pay) → the sandbox Alipay cashier → back on the shop's
// result page. Screenshots of the cashier and the phone pay page go to SCREENSHOT_DIR.
// Usage: node cashier_flow.mjs http://127.0.0.1:PORT SCREENSHOT_DIR
import { snap as shoot } from './shots.mjs';
import { WECHAT_UA, check, launch, registerShopper, placeOrder as place } from './shop.mjs';

const base = process.argv[2];
const shots = process.argv[3];
if (!base || !shots) throw new Error('usage: node cashier_flow.mjs BASE_URL SCREENSHOT_DIR');
const ALIPAY_UA = 'Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Mobile Safari/537.36 AlipayClient/10.5.36';
const PHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const snap = (page, name) => shoot(page, shots, name);
const placeOrder = (page, goods) => place(page, base, goods);

const browser = await launch();
try {
  const shopper = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const pc = await shopper.newPage();
  await registerShopper(pc, base, 'cashier_' + Date.now());

  async function resultOf(page) {
    await page.waitForURL(/\/home\/order\/payresult\?order_sn=/, { timeout: 15000 });
    return (await page.textContent('#result h1')).trim();
  }

  // 1. WeChat scans the QR.
  const wechatNo = await placeOrder(pc, 2);
  const qrUrl = await pc.getAttribute('#qr-link', 'href');
  const wx = await browser.newContext({ userAgent: WECHAT_UA, viewport: { width: 390, height: 844 } });
  const wxPage = await wx.newPage();
  await wxPage.goto(qrUrl);
  check(wxPage.url().includes('/home/order/wxcashier?id='), `WeChat landed on ${wxPage.url()}`);
  check((await wxPage.textContent('#order-no')).trim() === wechatNo, 'cashier order');
  await snap(wxPage, 'cashier-wechat');
  await wxPage.click('#wx-pay');
  await wxPage.waitForSelector('#sbx-wx-confirm');
  await wxPage.click('#sbx-wx-confirm');
  await wxPage.waitForSelector('#cashier-paid', { timeout: 15000 });
  const wechatPhone = (await wxPage.textContent('#cashier-paid')).trim();
  await wx.close();
  const wechatPc = await resultOf(pc);

  // 2. Alipay scans the QR.
  const alipayNo = await placeOrder(pc, 3);
  const ali = await browser.newContext({ userAgent: ALIPAY_UA });
  const aliPage = await ali.newPage();
  await aliPage.goto(await pc.getAttribute('#qr-link', 'href'));
  check(aliPage.url().includes('/sandbox/alipay/'), `Alipay landed on ${aliPage.url()}`);
  await aliPage.click('#confirm [type=submit]');
  await aliPage.waitForSelector('#done');
  await ali.close();
  const alipayPc = await resultOf(pc);

  // 3. The shopper on a phone browser pays with Alipay wap.pay and comes back.
  const phoneNo = await placeOrder(pc, 4);
  const phoneCtx = await browser.newContext({
    storageState: await shopper.storageState(), userAgent: PHONE_UA,
    viewport: { width: 390, height: 844 },
  });
  const phone = await phoneCtx.newPage();
  await phone.goto(`${base}/home/order/pay?order_sn=${phoneNo}`);
  check(await phone.isVisible('#phone-alipay'), 'no phone cashier');
  await snap(phone, 'pay-phone-cashier');
  await phone.click('#phone-alipay');
  await phone.waitForURL(/\/sandbox\/alipay\//);
  await phone.click('#confirm [type=submit]');
  await phone.waitForURL(/\/home\/order\/payresult\?order_sn=/, { timeout: 15000 });
  // Back before the notification, the result page polls and updates by itself.
  let phoneResult = '';
  for (let i = 0; i < 30 && phoneResult !== '支付成功'; i++) {
    try {
      phoneResult = (await phone.textContent('#result h1')).trim();
    } catch (e) {
      // the page was replacing itself
    }
    if (phoneResult !== '支付成功') await phone.waitForTimeout(500);
  }
  await phoneCtx.close();

  console.log(JSON.stringify({ wechatNo, wechatPhone, wechatPc, alipayNo, alipayPc, phoneNo, phoneResult }));
} finally {
  await browser.close();
}
