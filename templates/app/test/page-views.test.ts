import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestDriver, tributary, type WindowResult } from 'tributary';
import { declarePageViews } from '../src/page-views.js';

test('page views are counted per page and minute; a view without a page goes to the DLQ', async () => {
  const app = tributary({ appId: 'page-views-test' });
  declarePageViews(app, { topic: 'page-views', table: 'page_views_1m' });
  const driver = new TestDriver(app.topology());
  try {
    const t0 = Date.UTC(2024, 0, 1, 12, 0, 0);
    await driver.pipe('page-views', { page: '/', user: 'a', time: t0 + 1_000 });
    await driver.pipe('page-views', { page: '/', user: 'b', time: t0 + 2_000 });
    await driver.pipe('page-views', { page: '/docs', user: 'a', time: t0 + 3_000 });
    await driver.pipe('page-views', { page: '', user: 'c', time: t0 + 4_000 });
    // A view two minutes later moves the watermark past the first window's end and grace: it closes.
    await driver.pipe('page-views', { page: '/', user: 'a', time: t0 + 120_000 });

    const rows = await driver.output<WindowResult<{ page: string }, { views: number }>>(
      'clickhouse:default.page_views_1m',
    );
    assert.deepEqual(rows.map((row) => [row.windowStart, row.key.page, row.value.views]).sort(), [
      [t0, '/', 2],
      [t0, '/docs', 1],
    ]);
    const deadLetters = await driver.deadLetters();
    assert.deepEqual(
      deadLetters.map((letter) => [letter.reason, letter.message]),
      [['validation-failed', 'page is missing']],
    );
  } finally {
    await driver.close();
  }
});
