/**
 * The module `tributary run` starts: it exports the App as default. Runtime settings come from
 * TRIBUTARY_* environment variables (`npx tributary env` lists them); the names below from this app's own.
 */
import { tributary } from 'tributary';
import { declarePageViews } from './page-views.js';

const app = tributary({ appId: 'page-views' });
declarePageViews(app, {
  topic: process.env.PAGE_VIEWS_TOPIC ?? 'page-views',
  table: process.env.PAGE_VIEWS_TABLE ?? 'page_views_1m',
});

export default app;
