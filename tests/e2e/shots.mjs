// Screenshots of a page at a PC width and a phone width, for people to look at:
// DIR/NAME-1366.png and DIR/NAME-390.png (full page). The page is left at the PC width.
import { mkdirSync } from 'node:fs';

const WIDTHS = [[1366, 900], [390, 844]];

export async function snap(page, dir, name) {
  mkdirSync(dir, { recursive: true });
  for (const [width, height] of WIDTHS) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: `${dir}/${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1366, height: 900 });
}
