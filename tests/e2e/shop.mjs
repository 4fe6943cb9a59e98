// What the browser tests share: headless Debian Chromium, a new shopper with an address,
// and placing an order of one product from the cart (its pay page then shows the QR).
import { chromium } from 'playwright-core';

export const WECHAT_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47';

export function check(ok, what) {
  if (!ok) throw new Error(what);
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Registers `user` on `page` and saves an address.
export async function registerShopper(page, base, user) {
  await page.goto(`${base}/home/register`);
  await page.fill('#username', user);
  await page.fill('#password', 'secret-123');
  await page.fill('#password2', 'secret-123');
  await page.click('#register-form [type=submit]');
  await page.goto(`${base}/home/address`);
  for (const [id, v] of [['name', '王小明'], ['mobile', '13800138000'], ['province', '上海市'],
                         ['city', '上海市'], ['district', '浦东新区'], ['detail', '世纪大道 100 号']]) {
    await page.fill(`#${id}`, v);
  }
  await page.click('#address-form [type=submit]');
}

// Puts one product in the cart and places the order: the pay page's order number.
export async function placeOrder(page, base, goods) {
  await page.goto(`${base}/home/goods/${goods}`);
  await page.click('#add-to-cart [type=submit]');
  await page.goto(`${base}/home/order/checkout`);
  await page.click('#place-order [type=submit]');
  await page.waitForURL(/\/home\/order\/pay\?order_sn=/);
  check(await page.isVisible('#qr svg'), 'no QR on the pay page');
  return (await page.textContent('#order-no')).trim();
}
