/**
 * What the Dashboards panel and "Publish this notebook" show and send, as plain
 * data: the API's shapes, a dashboard's cells, the share link's expiry choices and
 * the publish request. Kept free of JupyterLab and the DOM so the unit tests run in
 * Node; dashboardspanel.ts and publishform.ts only turn this into elements.
 */
import { relativeTime, utcLabel } from './jobs';

/** One dashboard as `GET /lakebook/api/dashboards` lists it. */
export interface IDashboard {
  name: string;
  notebook: string;
  url: string;
  published_at: string;
  published_by: string;
  pool_size: number;
  last_snapshot: string | null;
  snapshot_url: string | null;
}

/** `GET /lakebook/api/dashboards`: the dashboards and the dashboard server. */
export interface IDashboards {
  dashboards: IDashboard[];
  server: { url: string; running: boolean };
}

/** A share link: `POST .../share` and `POST .../open`. */
export interface IShareLink {
  id: string;
  dashboard: string;
  expires_at: string;
  url: string;
}

/** The body of `POST /lakebook/api/dashboards`. */
export interface IPublishRequest {
  notebook: string;
  name?: string;
}

/** The lifetimes "Copy share link" offers; the server's default is 7 days. */
export const EXPIRY_CHOICES: { value: string; label: string }[] = [
  { value: '1h', label: '1 hour' },
  { value: '8h', label: '8 hours' },
  { value: '1d', label: '1 day' },
  { value: '7d', label: '7 days' },
  { value: '30d', label: '30 days' }
];
export const DEFAULT_EXPIRY = '7d';

/** The cells of a dashboard's row, as text. */
export interface IDashboardCells {
  notebook: string;
  snapshot: string;
  snapshotTitle: string;
}

export function dashboardCells(dashboard: IDashboard, now: Date): IDashboardCells {
  const last = dashboard.last_snapshot;
  return {
    notebook: dashboard.notebook,
    snapshot: last ? `snapshot ${relativeTime(last, now)}` : 'no snapshot yet',
    snapshotTitle: last ? `last snapshot ${utcLabel(last)}` : 'Snapshot executes the notebook and keeps its outputs'
  };
}

/** The line about the dashboard server: whether links open now, and what to do if not. */
export function serverLine(server: IDashboards['server'] | null): { text: string; running: boolean } {
  if (!server) {
    return { text: '', running: false };
  }
  return server.running
    ? { text: `Dashboard server running at ${server.url}`, running: true }
    : {
        text: `No dashboard server answers at ${server.url}: links open once it runs (lakebook up starts it when a dashboard is published).`,
        running: false
      };
}

/** What a share link's expiry reads as: "link valid until 2024-03-12 12:00:00 UTC". */
export function linkLabel(link: IShareLink): string {
  return `link valid until ${utcLabel(link.expires_at)}`;
}

/** A dashboard name made from a notebook's path, as the server makes it: "10_Delay Dashboard.ipynb" -> "delay_dashboard". */
export function suggestedDashboardName(path: string): string {
  const stem = (path.split('/').pop() ?? '').replace(/\.ipynb$/, '');
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .replace(/^[0-9_]+/, '')
    .slice(0, 63);
  return name || 'dashboard';
}

/** The publish request: the name trimmed, and left out when empty or the suggested one (the server's default). */
export function publishRequest(notebook: string, name: string): IPublishRequest {
  const given = name.trim();
  return given && given !== suggestedDashboardName(notebook) ? { notebook, name: given } : { notebook };
}
