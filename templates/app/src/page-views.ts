/**
 * The topology: page views (JSON) counted per page in 1-minute windows, one ClickHouse row per
 * (minute, page). Declared on any `app` so that the test can use it with the TestDriver.
 */
import { clickhouse, count, json, minutes, seconds, tumbling } from 'tributary';
import type { App } from 'tributary';

export interface PageView {
  page: string;
  user: string;
  /** Event time, epoch milliseconds. */
  time: number;
}

export interface PageViewsOptions {
  /** The input topic. */
  topic: string;
  /** The ClickHouse table (the sink creates it, and the view `<table>_totals`). */
  table: string;
}

export function declarePageViews(app: App, options: PageViewsOptions): void {
  app
    .stream(options.topic, json<PageView>(), { timestamp: (view) => view.time })
    .validate((view) => (typeof view.page === 'string' && view.page !== '' ? undefined : 'page is missing'))
    .groupBy((view) => ({ page: view.page }))
    .window(tumbling(minutes(1)), {
      grace: seconds(5),
      // A partition without new views for 10 s lets its watermark follow the clock, so windows close.
      idleness: seconds(10),
    })
    .aggregate({ views: count() })
    .to(clickhouse({ table: options.table }));
}
