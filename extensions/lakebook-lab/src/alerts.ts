/**
 * What the Lab does with the alert inbox (`type: lab` channels), as plain data: which
 * alerts are new, how each reads as a notification (type, text, action), and how long
 * to wait before asking again. Kept free of JupyterLab and the DOM so the unit tests
 * run in Node; alertnotifier.ts only turns this into notifications.
 */

/** One alert as `GET /lakebook/api/alerts` lists it. */
export interface ILabAlert {
  id: number;
  created_at: string;
  channel: string;
  severity: 'info' | 'warning' | 'critical';
  status: 'firing' | 'resolved';
  title: string;
  text: string;
  labels: Record<string, string>;
  url: string | null;
  read: boolean;
}

/** `GET /lakebook/api/alerts`: newest first, and how many are unread in all. */
export interface ILabAlerts {
  alerts: ILabAlert[];
  unread: number;
}

/** JupyterLab's notification types this module uses. */
export type AlertNotificationType = 'error' | 'warning' | 'info' | 'success';

/** What a notification's button opens: a job run's output, or a link. */
export type AlertAction =
  | { kind: 'run'; job: string; run: number; label: string }
  | { kind: 'url'; url: string; label: string };

export const POLL_MS = 5_000;
export const MAX_BACKOFF_MS = 60_000;
/** Notifications shown at once; more new alerts get one line that counts them. */
export const MAX_SHOWN = 5;
/** JupyterLab truncates a notification's message beyond this. */
export const MESSAGE_MAX = 140;
const AUTO_CLOSE_MS = 10_000;

/**
 * The unread alerts with an id above `lastSeen`, oldest first, at most MAX_SHOWN (the
 * newest of them); how many more there were; the id to ask after next time.
 */
export function newAlerts(
  alerts: ILabAlert[],
  lastSeen: number
): { show: ILabAlert[]; more: number; lastSeen: number } {
  const fresh = alerts.filter(a => a.id > lastSeen && !a.read).sort((a, b) => a.id - b.id);
  const newest = Math.max(lastSeen, ...alerts.map(a => a.id));
  const show = fresh.slice(-MAX_SHOWN);
  return { show, more: fresh.length - show.length, lastSeen: newest };
}

/** critical -> error, warning -> warning, info -> info; a resolved alert is a success. */
export function notificationType(alert: ILabAlert): AlertNotificationType {
  if (alert.status === 'resolved') {
    return 'success';
  }
  return alert.severity === 'critical' ? 'error' : alert.severity === 'warning' ? 'warning' : 'info';
}

/** The title, then the first line of the text, within what JupyterLab shows. */
export function alertMessage(alert: ILabAlert): string {
  const firstLine = alert.text.split('\n').find(line => line.trim())?.trim() ?? '';
  const message = firstLine ? `${alert.title}: ${firstLine}` : alert.title;
  return message.length <= MESSAGE_MAX ? message : `${message.slice(0, MESSAGE_MAX - 1)}…`;
}

/** A critical alert stays until dismissed; others close after a while (kept in the notification list). */
export function autoClose(alert: ILabAlert): number | false {
  return notificationType(alert) === 'error' ? false : AUTO_CLOSE_MS;
}

/**
 * The run's output for an alert about a job run that started (its labels name the job and
 * the run; a `late` run has none yet), else the alert's http(s) link, else nothing.
 */
export function alertAction(alert: ILabAlert): AlertAction | null {
  const { job, run, event } = alert.labels;
  if (job && run && /^[0-9]+$/.test(run) && event !== 'late') {
    return { kind: 'run', job, run: Number(run), label: 'Open output' };
  }
  if (alert.url && /^https?:\/\//.test(alert.url)) {
    return { kind: 'url', url: alert.url, label: 'Open link' };
  }
  return null;
}

/** The line standing for alerts not shown one by one. */
export function moreText(more: number): string {
  return `${more} more new alert${more === 1 ? '' : 's'}: \`lakebook alerts list\` lists them`;
}

/** The pause before the next poll: POLL_MS after an answer, doubled up to MAX_BACKOFF_MS while the server is unreachable. */
export function nextDelay(previousMs: number, ok: boolean): number {
  return ok ? POLL_MS : Math.min(Math.max(previousMs, POLL_MS) * 2, MAX_BACKOFF_MS);
}
