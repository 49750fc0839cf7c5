/**
 * What the Alerts panel shows of the monitor's alerts, as plain data: the API's answers
 * read defensively, their order, the badge's text, each alert's texts and buttons. Kept
 * free of JupyterLab and the DOM so the unit tests run in Node; alertspanel.ts only turns
 * this into elements.
 */
import { LakeApiError } from './errors';
import { relativeTime, utcLabel } from './jobs';

export type MonitorSeverity = 'info' | 'warning' | 'critical';
export type MonitorStatus = 'firing' | 'resolved';

/** One alert as `GET /lakebook/api/monitor/alerts` lists it (fields the panel does not use are dropped). */
export interface IMonitorAlert {
  id: number;
  fingerprint: string;
  alertname: string;
  title: string;
  text: string;
  severity: MonitorSeverity;
  status: MonitorStatus;
  labels: Record<string, string>;
  starts_at: string;
  ends_at: string | null;
  /** Acknowledged by someone: who and when, if the server says. */
  acked: boolean;
  acked_by: string | null;
  acked_at: string | null;
  silenced: boolean;
  /** What depends on what the alert is about, downstream: tables, feature views, jobs, ... */
  impact: string[];
}

/** `GET /lakebook/api/monitor/alerts`: the alerts, and how many are open. */
export interface IMonitorAlerts {
  alerts: IMonitorAlert[];
  /** Firing, neither acknowledged nor silenced: what the badge counts. */
  open: number;
}

/** The panel's filter: the open alerts only, or every alert the store keeps. */
export type AlertFilter = 'open' | 'all';

/** What a row's button does (its `data-action`). */
export type AlertButton = 'ack';

const SEVERITY_RANK: Record<MonitorSeverity, number> = { critical: 0, warning: 1, info: 2 };
/** The labels a row does not repeat: its title and colour say them already. */
const HIDDEN_LABELS = new Set(['alertname', 'severity']);
/** Labels shown first, in this order; the others follow by name. */
const LEADING_LABELS = ['check', 'kind'];
/** Beyond this the badge reads "99+" (the tab has room for three characters). */
const BADGE_MAX = 99;

/** The answer's one error: its body is not what the API sends. */
function malformed(what: string): LakeApiError {
  return new LakeApiError(
    `The lakebook server sent ${what} the Alerts panel cannot read.`,
    'Are JupyterLab and the lakebook package the same version? Restart JupyterLab after upgrading.'
  );
}

function text(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

function textOrNull(value: unknown): string | null {
  return typeof value === 'string' && value ? value : null;
}

/** The kinds of an impact object, in the order listed, and how an entry of each reads. */
const IMPACT_KINDS: [string, string][] = [
  ['tables', ''],
  ['feature_views', 'feature view '],
  ['feature_services', 'feature service '],
  ['jobs', 'job '],
  ['dashboards', 'dashboard '],
  ['endpoints', 'endpoint ']
];

/**
 * What an alert affects, one text each: a list of texts as it is, or the alert manager's
 * impact object (`{tables: [..], jobs: [..], ...}`) with each entry named by its kind
 * ("mart.delays", "job nightly"); its notes are not things affected, and are left out.
 */
export function impactEntries(impact: unknown): string[] {
  if (Array.isArray(impact)) {
    return impact.map(String);
  }
  if (!impact || typeof impact !== 'object') {
    return [];
  }
  const byKind = impact as Record<string, unknown>;
  return IMPACT_KINDS.flatMap(([kind, prefix]) =>
    Array.isArray(byKind[kind]) ? (byKind[kind] as unknown[]).map(name => `${prefix}${String(name)}`) : []
  );
}

/**
 * One alert of an answer, its fields checked and defaulted (an older or newer server
 * may send fewer or more), or an error naming what is missing.
 */
export function parseAlert(body: unknown): IMonitorAlert {
  const raw = (body && typeof body === 'object' ? body : null) as Record<string, unknown> | null;
  if (!raw || typeof raw.id !== 'number') {
    throw malformed('an alert without an id');
  }
  const labels: Record<string, string> = {};
  if (raw.labels && typeof raw.labels === 'object') {
    for (const [name, value] of Object.entries(raw.labels as Record<string, unknown>)) {
      labels[name] = String(value);
    }
  }
  const severity = text(raw.severity) in SEVERITY_RANK ? (raw.severity as MonitorSeverity) : 'warning';
  const alertname = text(raw.alertname, labels.alertname ?? '');
  const ackedBy = textOrNull(raw.acked_by);
  const ackedAt = textOrNull(raw.acked_at);
  const acked = raw.acked === true || ackedBy !== null || ackedAt !== null;
  return {
    id: raw.id,
    fingerprint: text(raw.fingerprint),
    alertname,
    title: text(raw.title) || alertname || `alert ${raw.id}`,
    text: text(raw.text),
    severity,
    status: raw.status === 'resolved' ? 'resolved' : 'firing',
    labels,
    starts_at: text(raw.starts_at),
    ends_at: textOrNull(raw.ends_at),
    acked,
    acked_by: ackedBy,
    acked_at: ackedAt,
    silenced: raw.silenced === true,
    impact: impactEntries(raw.impact)
  };
}

/**
 * `GET /lakebook/api/monitor/alerts`'s body. The open alerts are counted here, from the
 * list, not taken from the answer's counts: the badge then always agrees with the rows
 * (and the server's `open` counts every firing alert, acked or not).
 */
export function parseAlerts(body: unknown): IMonitorAlerts {
  const raw = (body && typeof body === 'object' ? body : null) as Record<string, unknown> | null;
  if (!raw || !Array.isArray(raw.alerts)) {
    throw malformed('a list of alerts');
  }
  const alerts = raw.alerts.map(parseAlert);
  return { alerts, open: alerts.filter(isOpen).length };
}

/** Acknowledged by someone. */
export function isAcked(alert: IMonitorAlert): boolean {
  return alert.acked;
}

/** Open: firing, and neither acknowledged nor silenced (what the badge counts). */
export function isOpen(alert: IMonitorAlert): boolean {
  return alert.status === 'firing' && !isAcked(alert) && !alert.silenced;
}

/** 0 open, 1 firing but acked or silenced, 2 resolved: the order of the list's groups. */
function group(alert: IMonitorAlert): number {
  return isOpen(alert) ? 0 : alert.status === 'firing' ? 1 : 2;
}

/**
 * The alerts as the panel lists them: open ones first, then the acked or silenced that
 * still fire, then the resolved; within each, the most severe first, then the newest.
 */
export function sortAlerts(alerts: IMonitorAlert[]): IMonitorAlert[] {
  const started = (alert: IMonitorAlert) => Date.parse(alert.starts_at) || 0;
  return [...alerts].sort(
    (a, b) =>
      group(a) - group(b) ||
      SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
      started(b) - started(a) ||
      b.id - a.id
  );
}

/** The alerts the filter lets through, in the panel's order. */
export function visibleAlerts(alerts: IMonitorAlert[], filter: AlertFilter): IMonitorAlert[] {
  return sortAlerts(filter === 'open' ? alerts.filter(isOpen) : alerts);
}

/** The tab's badge: the open count, "99+" beyond 99, nothing when none is open. */
export function badgeText(open: number): string {
  if (open <= 0) {
    return '';
  }
  return open > BADGE_MAX ? `${BADGE_MAX}+` : String(open);
}

/** The tab's tooltip. */
export function badgeCaption(open: number | null): string {
  if (open === null) {
    return 'Monitor alerts';
  }
  return open === 0 ? 'Monitor alerts: none open' : `Monitor alerts: ${open} open`;
}

/** Since when, relative to `now`: "started 5 min ago", or "resolved just now". */
export function sinceText(alert: IMonitorAlert, now: Date): string {
  if (alert.status === 'resolved' && alert.ends_at) {
    return `resolved ${relativeTime(alert.ends_at, now)}`;
  }
  return `started ${relativeTime(alert.starts_at || null, now)}`;
}

/** The same times in full, for the tooltip. */
export function sinceTitle(alert: IMonitorAlert): string {
  const started = `started ${utcLabel(alert.starts_at || null)}`;
  return alert.ends_at ? `${started}, resolved ${utcLabel(alert.ends_at)}` : started;
}

/** The labels worth a chip, as `name=value`: `check` and `kind` first, then by name. */
export function labelTexts(alert: IMonitorAlert): string[] {
  const names = Object.keys(alert.labels).filter(name => !HIDDEN_LABELS.has(name));
  const rank = (name: string) => {
    const leading = LEADING_LABELS.indexOf(name);
    return leading === -1 ? LEADING_LABELS.length : leading;
  };
  names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return names.map(name => `${name}=${alert.labels[name]}`);
}

/** "affects: mart.delays, job nightly"; empty when nothing depends on it. */
export function impactText(alert: IMonitorAlert): string {
  return alert.impact.length ? `affects: ${alert.impact.join(', ')}` : '';
}

/** The marks after the title: who acknowledged it and when, silenced, resolved. */
export function markTexts(alert: IMonitorAlert, now: Date): { mark: string; text: string }[] {
  const marks: { mark: string; text: string }[] = [];
  if (alert.status === 'resolved') {
    marks.push({ mark: 'resolved', text: 'resolved' });
  }
  if (isAcked(alert)) {
    const who = alert.acked_by ? ` by ${alert.acked_by}` : '';
    const when = alert.acked_at ? ` ${relativeTime(alert.acked_at, now)}` : '';
    marks.push({ mark: 'acked', text: `acked${who}${when}` });
  }
  if (alert.silenced) {
    marks.push({ mark: 'silenced', text: 'silenced' });
  }
  return marks;
}

/** A row's buttons: "Ack" while it fires and nobody has acknowledged it. */
export function alertButtons(alert: IMonitorAlert): AlertButton[] {
  return alert.status === 'firing' && !isAcked(alert) ? ['ack'] : [];
}

/** What the list says when the filter leaves nothing to show. */
export function emptyText(answer: IMonitorAlerts, filter: AlertFilter): string {
  if (filter === 'open' && answer.alerts.length) {
    const others = answer.alerts.length;
    return `No open alert (${others} acked, silenced or resolved: choose "all" to see ${others === 1 ? 'it' : 'them'}).`;
  }
  return 'No alert. The checks in monitors/*.yaml raise them (`lakebook monitor run`; `lakebook up` runs them on a schedule).';
}
