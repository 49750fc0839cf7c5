/**
 * The Alerts panel in the left sidebar: the monitor's alerts (severity, title, since
 * when, labels, what they affect downstream, acked/silenced marks) with "Ack" on each
 * firing alert nobody has acknowledged, filtered to the open ones or not. Its tab shows
 * the number of open alerts: the panel reads them every few seconds whether shown or not
 * (less often while the server does not answer), and redraws only when what it shows
 * changed.
 *
 * Plain DOM with `data-alert-id` / `data-cell` / `data-mark` / `data-action` /
 * `data-filter` attributes so browser tests can find things; every text comes from
 * ./monitoralerts.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { nextDelay } from './alerts';
import { ackMonitorAlert, fetchMonitorAlerts } from './api';
import { RowActions } from './rowactions';
import { errorBlock, h, panelHeader } from './dom';
import { alertsIcon } from './icons';
import {
  AlertFilter,
  alertButtons,
  badgeCaption,
  badgeText,
  emptyText,
  IMonitorAlert,
  IMonitorAlerts,
  impactText,
  isOpen,
  labelTexts,
  markTexts,
  sinceText,
  sinceTitle,
  visibleAlerts
} from './monitoralerts';
import { BackoffPoller } from './polling';

export const ALERTS_PANEL_ID = 'lakebook-alerts-panel';

export namespace AlertsPanel {
  /** Where the data comes from: the server API unless a test passes another. */
  export interface IOptions {
    loadAlerts?: () => Promise<IMonitorAlerts>;
    ack?: (id: number) => Promise<IMonitorAlert>;
  }
}

/**
 * The sidebar tab's icon (a virtual DOM renderer, as a LabIcon is): the bell with the open
 * alerts' count over it. The tab bar calls `render` each time it draws the tab again, which
 * a change of the title's dataset causes.
 */
class BadgedIcon {
  text = '';

  render(host: HTMLElement): void {
    // Keeps the bell when it is drawn already; else empties the host and draws it.
    alertsIcon.element({ container: host, stylesheet: 'sideBar' });
    let badge = host.querySelector('.lakebook-alerts-badge');
    if (!this.text) {
      badge?.remove(); // no open alert: no badge at all, not an empty one
      return;
    }
    if (!badge) {
      badge = host.appendChild(h('span', { className: 'lakebook-alerts-badge' }));
    }
    badge.textContent = this.text;
  }
}

export class AlertsPanel extends Widget {
  constructor(options: AlertsPanel.IOptions = {}) {
    super();
    this._options = options;
    this.id = ALERTS_PANEL_ID;
    this.addClass('lakebook-AlertsPanel');
    this.title.icon = this._icon;
    this.title.caption = badgeCaption(null);
    this._filterBar = h('div', { className: 'lakebook-alerts-filter' });
    this._body = h('div', { className: 'lakebook-body' });
    this.node.append(
      panelHeader('Alerts', 'Refresh the alerts', () => void this.refresh()),
      this._filterBar,
      this._body
    );
    this._render();
  }

  /** The alerts as last loaded, or null before the first successful load. */
  get alerts(): IMonitorAlerts | null {
    return this._alerts;
  }

  /** Start reading the alerts (for the badge), now and every few seconds, until disposed. */
  start(): void {
    this._poller.start();
  }

  /** Read the alerts again; resolves to whether the server answered. */
  async refresh(): Promise<boolean> {
    const generation = ++this._generation;
    let error: unknown = null;
    try {
      const alerts = await (this._options.loadAlerts ?? fetchMonitorAlerts)();
      if (generation !== this._generation) {
        return true;
      }
      this._alerts = alerts;
    } catch (caught) {
      error = caught;
    }
    if (generation === this._generation) {
      this._error = error;
      this._render();
    }
    return error === null;
  }

  dispose(): void {
    this._poller.stop();
    super.dispose();
  }

  /** Opening the panel shows the alerts as they are now, not as of the last poll. */
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private _render(): void {
    const now = new Date();
    const rows = this._alerts ? visibleAlerts(this._alerts.alerts, this._filter) : [];
    const shown = JSON.stringify([this._alerts, this._filter, String(this._error), String(this._actions.notice),
      [...this._actions.busy], rows.map(row => sinceText(row, now)), rows.map(row => markTexts(row, now))]);
    if (shown === this._shown) {
      return; // nothing changed: the buttons stay under the pointer
    }
    this._shown = shown;
    this._renderBadge();
    this._filterBar.replaceChildren(...this._filterButtons());
    const content: HTMLElement[] = [this._error, this._actions.notice].filter(e => e).map(e => errorBlock(e));
    content.push(...rows.map(row => this._row(row, now)));
    if (this._alerts && !rows.length) {
      content.push(h('div', { className: 'lakebook-empty', text: emptyText(this._alerts, this._filter) }));
    }
    this._body.replaceChildren(...content);
  }

  /** The tab's count and tooltip; the dataset change makes the tab bar draw the tab again. */
  private _renderBadge(): void {
    const open = this._alerts?.open ?? null;
    const text = badgeText(open ?? 0);
    this.title.caption = badgeCaption(open);
    if (text !== this._icon.text) {
      this._icon.text = text;
      this.title.dataset = { ...this.title.dataset, 'open-alerts': String(open ?? 0) };
    }
  }

  private _filterButtons(): HTMLElement[] {
    const choices: { filter: AlertFilter; label: string }[] = [
      { filter: 'open', label: 'open' },
      { filter: 'all', label: 'all' }
    ];
    const buttons = choices.map(({ filter, label }) => {
      const pressed = filter === this._filter;
      const button = h('button', {
        className: `lakebook-alerts-filter-button jp-mod-styled${pressed ? ' lakebook-mod-selected' : ''}`,
        text: label,
        attrs: { type: 'button', 'data-filter': filter, 'aria-pressed': String(pressed) }
      });
      button.addEventListener('click', () => {
        this._filter = filter;
        this._render();
      });
      return button;
    });
    const total = this._alerts?.alerts.length;
    const count = this._alerts
      ? h('span', {
          className: 'lakebook-alerts-count',
          text: `${this._alerts.open} open of ${total}`,
          attrs: { 'data-cell': 'count' }
        })
      : null;
    return count ? [...buttons, count] : buttons;
  }

  private _row(alert: IMonitorAlert, now: Date): HTMLElement {
    const impact = impactText(alert);
    const labels = labelTexts(alert);
    const marks = markTexts(alert, now);
    const buttons = alertButtons(alert).map(action => this._ackButton(alert, action));
    return h('div', {
      className: `lakebook-alert lakebook-mod-${alert.severity}${isOpen(alert) ? ' lakebook-mod-open' : ''}`,
      attrs: {
        'data-alert-id': String(alert.id),
        'data-alertname': alert.alertname,
        'data-severity': alert.severity,
        'data-status': alert.status,
        'data-open': String(isOpen(alert))
      }
    }, [
      h('div', { className: 'lakebook-alert-line' }, [
        h('span', { className: 'lakebook-alert-severity', text: alert.severity, attrs: { 'data-cell': 'severity' } }),
        h('span', { className: 'lakebook-alert-title', text: alert.title, attrs: { 'data-cell': 'title' } })
      ]),
      h('div', { className: 'lakebook-alert-meta' }, [
        h('span', {
          className: 'lakebook-alert-since',
          text: sinceText(alert, now),
          title: sinceTitle(alert),
          attrs: { 'data-cell': 'since' }
        }),
        ...marks.map(({ mark, text }) =>
          h('span', { className: 'lakebook-alert-mark', text, attrs: { 'data-mark': mark } }))
      ]),
      alert.text ? h('div', { className: 'lakebook-alert-text', text: alert.text, attrs: { 'data-cell': 'text' } }) : null,
      labels.length
        ? h('div', { className: 'lakebook-alert-labels', attrs: { 'data-cell': 'labels' } },
            labels.map(label => h('span', { className: 'lakebook-alert-label', text: label })))
        : null,
      impact ? h('div', { className: 'lakebook-alert-impact', text: impact, attrs: { 'data-cell': 'impact' } }) : null,
      buttons.length ? h('div', { className: 'lakebook-job-actions' }, buttons) : null
    ]);
  }

  private _ackButton(alert: IMonitorAlert, action: 'ack'): HTMLElement {
    const key = `${action}:${alert.id}`;
    const busy = this._actions.busy.has(key);
    const button = h('button', {
      className: 'lakebook-alert-ack lakebook-job-button jp-mod-styled',
      text: busy ? 'Acking…' : 'Ack',
      title: 'Acknowledge: someone is on it (it leaves the open alerts and the badge)',
      attrs: { type: 'button', 'data-action': action }
    });
    button.disabled = busy;
    button.addEventListener('click', () =>
      void this._actions.run(key, () => (this._options.ack ?? ackMonitorAlert)(alert.id)));
    return button;
  }

  private _options: AlertsPanel.IOptions;
  private _icon = new BadgedIcon();
  private _filterBar: HTMLElement;
  private _body: HTMLElement;
  private _alerts: IMonitorAlerts | null = null;
  private _filter: AlertFilter = 'open';
  private _error: unknown = null;
  private _actions = new RowActions(() => this._render(), () => this.refresh());
  private _generation = 0;
  private _shown = '';
  private _poller = new BackoffPoller(() => this.refresh(), nextDelay);
}
