/**
 * The Dashboards panel in the left sidebar: a row per published dashboard (its
 * notebook, last snapshot) with "Open" (a short-lived link minted for this Lab user,
 * in a new tab), "Snapshot", "Copy share link" (with its lifetime) and "Unpublish",
 * and whether the dashboard server answers. Read again every few seconds while shown,
 * and redrawn only when what it shows changed.
 *
 * Plain DOM with `data-dashboard` / `data-cell` / `data-action` attributes so browser
 * tests can find things; every text comes from ./dashboards.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { fetchDashboards, openLink, shareDashboard, snapshotDashboard, unpublishDashboard } from './api';
import { RowActions } from './rowactions';
import {
  dashboardCells,
  DEFAULT_EXPIRY,
  EXPIRY_CHOICES,
  IDashboard,
  IDashboards,
  IShareLink,
  linkLabel,
  serverLine
} from './dashboards';
import { errorBlock, h, panelHeader } from './dom';
import { pollWhileShown, Poller } from './polling';

export const DASHBOARDS_PANEL_ID = 'lakebook-dashboards-panel';

/** How often the dashboards are read again while the panel is shown. */
export const DASHBOARDS_REFRESH_MS = 5000;

export class DashboardsPanel extends Widget {
  constructor() {
    super();
    this.id = DASHBOARDS_PANEL_ID;
    this.addClass('lakebook-DashboardsPanel');
    this._status = h('div', { className: 'lakebook-status' });
    this._body = h('div', { className: 'lakebook-body' });
    this.node.append(
      panelHeader('Dashboards', 'Refresh the dashboards', () => void this.refresh()),
      this._status,
      this._body
    );
    pollWhileShown(this, new Poller(() => this.refresh(), DASHBOARDS_REFRESH_MS));
  }

  /** The dashboards as last loaded, or null before the first successful load. */
  get dashboards(): IDashboards | null {
    return this._dashboards;
  }

  async refresh(): Promise<void> {
    const generation = ++this._generation;
    let error: unknown = null;
    try {
      const dashboards = await fetchDashboards();
      if (generation !== this._generation) {
        return;
      }
      this._dashboards = dashboards;
    } catch (caught) {
      error = caught;
    }
    if (generation === this._generation) {
      this._error = error;
      this._render();
    }
  }

  private _render(): void {
    const now = new Date();
    const rows = this._dashboards?.dashboards ?? [];
    const shown = JSON.stringify([this._dashboards, String(this._error), String(this._actions.notice),
      [...this._actions.busy], [...this._links], rows.map(row => dashboardCells(row, now).snapshot)]);
    if (shown === this._shown) {
      return; // nothing changed: the buttons stay under the pointer
    }
    this._shown = shown;
    const server = serverLine(this._dashboards?.server ?? null);
    this._status.replaceChildren(...(server.text ? [h('div', {
      className: `lakebook-dashboard-server${server.running ? '' : ' lakebook-mod-down'}`,
      text: server.text,
      attrs: { 'data-server': server.running ? 'running' : 'down' }
    })] : []));
    const content: Node[] = [this._error, this._actions.notice].filter(e => e).map(e => errorBlock(e));
    if (this._dashboards && rows.length === 0) {
      content.push(h('div', {
        className: 'lakebook-empty',
        text: 'No dashboard yet. Use "Publish" on a notebook\'s toolbar.'
      }));
    }
    content.push(...rows.map(row => this._row(row, now)));
    this._body.replaceChildren(...content);
  }

  private _row(dashboard: IDashboard, now: Date): HTMLElement {
    const cells = dashboardCells(dashboard, now);
    const name = dashboard.name;
    const snapshotting = this._actions.busy.has(`snapshot:${name}`);
    return h('div', { className: 'lakebook-dashboard', attrs: { 'data-dashboard': name } }, [
      h('div', { className: 'lakebook-dashboard-line' }, [
        h('span', { className: 'lakebook-dashboard-name', text: name, title: dashboard.url }),
        h('span', {
          className: 'lakebook-dashboard-snapshot',
          text: snapshotting ? 'taking a snapshot…' : cells.snapshot,
          title: cells.snapshotTitle,
          attrs: { 'data-cell': 'snapshot' }
        })
      ]),
      h('div', { className: 'lakebook-dashboard-notebook', text: cells.notebook, attrs: { 'data-cell': 'notebook' } }),
      h('div', { className: 'lakebook-job-actions' }, [
        this._button('Open', 'open', name, () => openInNewTab(name)),
        this._button('Snapshot', 'snapshot', name, () => snapshotDashboard(name), snapshotting),
        this._expiry(name),
        this._button('Copy share link', 'share', name, () => this._share(name)),
        this._button('Unpublish', 'unpublish', name, () => confirmUnpublish(name))
      ]),
      this._link(name)
    ]);
  }

  private _expiry(name: string): HTMLElement {
    const select = h('select', {
      className: 'lakebook-dashboard-expiry jp-mod-styled',
      attrs: { 'data-field': 'expires', 'aria-label': `Lifetime of a share link to ${name}` }
    });
    for (const choice of EXPIRY_CHOICES) {
      select.append(h('option', { text: choice.label, attrs: { value: choice.value } }));
    }
    select.value = this._expiries.get(name) ?? DEFAULT_EXPIRY;
    select.addEventListener('change', () => this._expiries.set(name, select.value));
    return select;
  }

  /** Mint a share link, show it (selectable) and put it on the clipboard when the browser lets us. */
  private async _share(name: string): Promise<void> {
    const link = await shareDashboard(name, this._expiries.get(name) ?? DEFAULT_EXPIRY);
    let copied = true;
    try {
      await navigator.clipboard.writeText(link.url);
    } catch {
      copied = false; // no clipboard access (an insecure origin, or permission refused): the link stays shown
    }
    this._links.set(name, { link, copied });
  }

  private _link(name: string): HTMLElement | null {
    const shared = this._links.get(name);
    if (!shared) {
      return null;
    }
    const input = h('input', {
      className: 'lakebook-dashboard-link-url jp-mod-styled',
      attrs: { type: 'text', readonly: 'true', value: shared.link.url, 'data-cell': 'link' }
    });
    input.addEventListener('focus', () => input.select());
    const note = `${shared.copied ? 'copied, ' : ''}${linkLabel(shared.link)}`;
    return h('div', { className: 'lakebook-dashboard-link', attrs: { 'data-link-id': shared.link.id } }, [
      input,
      h('div', { className: 'lakebook-dashboard-link-note', text: note, attrs: { 'data-cell': 'link-note' } })
    ]);
  }

  private _button(
    label: string,
    action: string,
    name: string,
    work: () => Promise<unknown>,
    disabled = false
  ): HTMLElement {
    const button = h('button', {
      className: 'lakebook-job-button jp-mod-styled',
      text: label,
      attrs: { type: 'button', 'data-action': action }
    });
    button.disabled = disabled;
    button.addEventListener('click', () => void this._actions.run(`${action}:${name}`, work));
    return button;
  }

  private _status: HTMLElement;
  private _body: HTMLElement;
  private _dashboards: IDashboards | null = null;
  private _error: unknown = null;
  private _actions = new RowActions(() => this._render(), () => this.refresh());
  private _expiries = new Map<string, string>();
  private _links = new Map<string, { link: IShareLink; copied: boolean }>();
  private _generation = 0;
  private _shown = '';
}

/**
 * Open the dashboard in a new tab with a link minted for this Lab user. The tab is
 * opened at once, inside the click, so the browser does not block it as a pop-up,
 * and sent to the link once the server has minted it (closed if it could not).
 */
async function openInNewTab(name: string): Promise<void> {
  const tab = window.open('', '_blank');
  try {
    const link = await openLink(name);
    if (!tab) {
      throw new Error(`The browser blocked the new tab: allow pop-ups for this page, or open ${link.url}`);
    }
    tab.opener = null; // the dashboard's page gets no handle on the Lab
    tab.location.href = link.url;
  } catch (error) {
    tab?.close();
    throw error;
  }
}

async function confirmUnpublish(name: string): Promise<void> {
  const result = await showDialog({
    title: `Unpublish ${name}?`,
    body: 'Its share links stop working; its snapshots are kept.',
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Unpublish' })]
  });
  if (result.button.accept) {
    await unpublishDashboard(name);
  }
}
