/**
 * The alert inbox as JupyterLab notifications: polls `GET /lakebook/api/alerts` while
 * the Lab is open, shows each new unread alert once and marks it read, so another Lab
 * (or a reload) does not show it again and `lakebook alerts list` counts it as seen.
 */
import { Notification } from '@jupyterlab/apputils';

import { fetchAlerts, markAlertRead } from './api';
import {
  alertAction,
  alertMessage,
  autoClose,
  ILabAlert,
  moreText,
  newAlerts,
  nextDelay,
  notificationType,
  POLL_MS
} from './alerts';

const FETCH_LIMIT = 50;

export class AlertNotifier {
  constructor(private readonly openRunOutput: (job: string, run: number) => void) {}

  /** Poll now, then every POLL_MS, backing off while the server does not answer. */
  start(): void {
    void this._tick();
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    this._disposed = true;
  }

  private async _tick(): Promise<void> {
    let ok = true;
    try {
      await this._poll();
    } catch {
      ok = false; // the server is restarting or gone: ask again later, less often
    }
    this._delay = nextDelay(this._delay, ok);
    if (!this._disposed) {
      this._timer = window.setTimeout(() => void this._tick(), this._delay);
    }
  }

  private async _poll(): Promise<void> {
    const answer = await fetchAlerts(this._lastSeen, FETCH_LIMIT);
    const found = newAlerts(answer.alerts, this._lastSeen);
    this._lastSeen = found.lastSeen;
    for (const alert of found.show) {
      this._notify(alert);
      await markAlertRead(alert.id).catch(() => undefined); // shown here already; the next Lab may show it again
    }
    if (found.more) {
      Notification.info(moreText(found.more), { autoClose: 10_000 });
    }
  }

  private _notify(alert: ILabAlert): void {
    const action = alertAction(alert);
    const actions: Notification.IAction[] = [];
    if (action?.kind === 'run') {
      actions.push({ label: action.label, callback: () => this.openRunOutput(action.job, action.run) });
    } else if (action?.kind === 'url') {
      actions.push({ label: action.label, callback: () => window.open(action.url, '_blank', 'noopener') });
    }
    Notification.emit(alertMessage(alert), notificationType(alert), { autoClose: autoClose(alert), actions });
  }

  private _lastSeen = 0;
  private _delay = POLL_MS;
  private _timer = 0;
  private _disposed = false;
}
