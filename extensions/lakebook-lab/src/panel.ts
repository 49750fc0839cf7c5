/**
 * The Lake panel in the left sidebar: zones -> tables -> columns, with a filter
 * box, a refresh button and, for the selected table, "Insert query" and "Preview".
 *
 * Rendering is plain DOM with stable class names and `data-zone` / `data-table` /
 * `data-column` attributes so browser tests can find things. All decisions
 * (tree, filter, labels) come from ./model.
 */
import { caretDownIcon, caretRightIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { fetchCatalog } from './api';
import { errorBlock, h, panelHeader } from './dom';
import {
  buildTree,
  bytesLabel,
  countTables,
  filterTree,
  freshnessLabel,
  ICatalog,
  IColumnInfo,
  ILakeTree,
  ITableInfo,
  ITableNode,
  IZoneNode,
  relativeTime,
  rowCountLabel
} from './model';

export const LAKE_PANEL_ID = 'lakebook-lake-panel';

/** How often relative times ("3 min ago") are re-rendered while the panel is shown. */
const RELABEL_INTERVAL_MS = 60 * 1000;

export namespace LakePanel {
  export interface IOptions {
    /** Add a `%%lake` cell querying the table to the current notebook. */
    onInsertQuery: (table: ITableInfo) => void;
    /** Open a preview of the table's first rows. */
    onPreview: (table: ITableInfo) => void;
    /** Where the catalog comes from; the server API unless a test passes another. */
    loadCatalog?: () => Promise<ICatalog>;
  }
}

export class LakePanel extends Widget {
  constructor(options: LakePanel.IOptions) {
    super();
    this._options = options;
    this.id = LAKE_PANEL_ID;
    this.addClass('lakebook-LakePanel');

    this._search = h('input', {
      className: 'lakebook-search jp-mod-styled',
      attrs: {
        type: 'search',
        placeholder: 'Filter tables and columns',
        'aria-label': 'Filter tables and columns'
      }
    });
    this._search.addEventListener('input', () => {
      this._query = this._search.value;
      this._render();
    });

    this._status = h('div', { className: 'lakebook-status' });
    this._body = h('div', { className: 'lakebook-body' });
    this.node.append(
      panelHeader('Lake', 'Refresh the catalog', () => void this.refresh()),
      h('div', { className: 'lakebook-search-row' }, [this._search]),
      this._status,
      this._body
    );
  }

  /** The catalog as last loaded, or null before the first successful load. */
  get tree(): ILakeTree | null {
    return this._tree;
  }

  /** Reload the catalog from the server and re-render. */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    this._loading = true;
    this.node.classList.add('lakebook-mod-loading');
    this._render();
    try {
      const catalog = await (this._options.loadCatalog ?? fetchCatalog)();
      if (generation !== this._generation) {
        return;
      }
      this._tree = buildTree(catalog);
      this._error = null;
    } catch (error) {
      if (generation !== this._generation) {
        return;
      }
      this._error = error;
    } finally {
      if (generation === this._generation) {
        this._loading = false;
        this.node.classList.remove('lakebook-mod-loading');
        this._render();
      }
    }
  }

  dispose(): void {
    this._stopRelabelTimer();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this._tree && !this._loading) {
      void this.refresh();
    } else {
      this._render();
    }
    this._stopRelabelTimer();
    this._relabelTimer = window.setInterval(
      () => this._render(),
      RELABEL_INTERVAL_MS
    );
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopRelabelTimer();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this._search.focus();
  }

  private _stopRelabelTimer(): void {
    if (this._relabelTimer !== null) {
      window.clearInterval(this._relabelTimer);
      this._relabelTimer = null;
    }
  }

  private _render(): void {
    const refocus = this._focusedHeaderSelector();
    const now = new Date();
    this._status.replaceChildren(...this._statusContent(now));
    const content: Node[] = [];
    if (this._error) {
      content.push(errorBlock(this._error));
    }
    if (this._tree) {
      const shown = filterTree(this._tree, this._query);
      if (countTables(shown) === 0) {
        content.push(this._emptyMessage());
      } else {
        content.push(
          h(
            'ul',
            { className: 'lakebook-tree', attrs: { role: 'tree' } },
            shown.zones.map(zone => this._zoneItem(zone, now))
          )
        );
      }
    }
    this._body.replaceChildren(...content);
    if (refocus) {
      this._body.querySelector<HTMLElement>(refocus)?.focus();
    }
  }

  /** A selector for the zone or table header that has keyboard focus, if any. */
  private _focusedHeaderSelector(): string | null {
    const active = document.activeElement;
    if (!(active instanceof HTMLElement) || !this._body.contains(active)) {
      return null;
    }
    const table = active.closest('[data-table]')?.getAttribute('data-table');
    if (table !== null && table !== undefined) {
      return `[data-table="${CSS.escape(table)}"] > .lakebook-table-header`;
    }
    const zone = active.closest('[data-zone]')?.getAttribute('data-zone');
    if (zone !== null && zone !== undefined) {
      return `[data-zone="${CSS.escape(zone)}"] > .lakebook-zone-header`;
    }
    return null;
  }

  private _statusContent(now: Date): Node[] {
    if (this._loading) {
      return [h('span', { className: 'lakebook-loading', text: 'Loading the catalog…' })];
    }
    if (!this._tree) {
      return [];
    }
    const tables = countTables(this._tree);
    return [
      h('span', {
        className: 'lakebook-workspace',
        text: this._tree.workspace,
        title: `Workspace ${this._tree.workspace}`
      }),
      h('span', {
        className: 'lakebook-summary',
        text: ` · ${tables} ${tables === 1 ? 'table' : 'tables'} · catalog read ${relativeTime(this._tree.generatedAt, now)}`
      })
    ];
  }

  private _emptyMessage(): HTMLElement {
    const text = this._query.trim()
      ? `No tables or columns match “${this._query.trim()}”.`
      : 'The catalog has no tables yet. Ingest some events or run a transform, then refresh.';
    return h('div', { className: 'lakebook-empty', text });
  }

  private _zoneItem(zone: IZoneNode, now: Date): HTMLElement {
    const collapsed = this._collapsedZones.has(zone.name) && !this._query.trim();
    const header = h(
      'div',
      {
        className: 'lakebook-zone-header',
        attrs: { role: 'button', tabindex: '0', 'aria-expanded': String(!collapsed) }
      },
      [
        (collapsed ? caretRightIcon : caretDownIcon).element({
          tag: 'span',
          className: 'lakebook-caret'
        }),
        h('span', { className: 'lakebook-zone-name', text: zone.name }),
        h('span', { className: 'lakebook-zone-count', text: String(zone.tables.length) })
      ]
    );
    onActivate(header, () => {
      if (this._collapsedZones.has(zone.name)) {
        this._collapsedZones.delete(zone.name);
      } else {
        this._collapsedZones.add(zone.name);
      }
      this._render();
    });
    return h(
      'li',
      {
        className: 'lakebook-zone',
        attrs: { 'data-zone': zone.name, role: 'treeitem' }
      },
      [
        header,
        !collapsed &&
          h(
            'ul',
            { className: 'lakebook-tables', attrs: { role: 'group' } },
            zone.tables.map(table => this._tableItem(table, now))
          )
      ]
    );
  }

  private _tableItem(node: ITableNode, now: Date): HTMLElement {
    const { info } = node;
    const selected = this._selected === info.name;
    const expanded = this._expandedTables.has(info.name) || node.matchedByColumn;
    const timestamps = [
      info.last_updated ? `last written ${info.last_updated}` : '',
      info.last_event_time ? `newest event ${info.last_event_time}` : ''
    ].filter(Boolean);

    const header = h(
      'div',
      {
        className: 'lakebook-table-header',
        title: info.description || info.name,
        attrs: { role: 'button', tabindex: '0', 'aria-expanded': String(expanded) }
      },
      [
        (expanded ? caretDownIcon : caretRightIcon).element({
          tag: 'span',
          className: 'lakebook-caret'
        }),
        h('span', { className: 'lakebook-table-name', text: info.table }),
        h('span', {
          className: 'lakebook-rowcount',
          text: rowCountLabel(info.row_count),
          title: bytesLabel(info.bytes)
        })
      ]
    );
    onActivate(header, () => {
      if (!selected) {
        this._selected = info.name;
        this._expandedTables.add(info.name);
      } else if (this._expandedTables.has(info.name)) {
        this._expandedTables.delete(info.name);
      } else {
        this._expandedTables.add(info.name);
      }
      this._render();
    });

    const meta = h('div', { className: 'lakebook-table-meta' }, [
      h('span', {
        className: 'lakebook-freshness',
        text: freshnessLabel(info, now),
        title: timestamps.join('\n')
      }),
      info.owner
        ? h('span', { className: 'lakebook-owner', text: info.owner, title: 'Owner' })
        : null
    ]);

    return h(
      'li',
      {
        className: 'lakebook-table' + (selected ? ' lakebook-mod-selected' : ''),
        attrs: {
          'data-table': info.name,
          role: 'treeitem',
          'aria-selected': String(selected)
        }
      },
      [
        header,
        meta,
        expanded && info.description
          ? h('div', { className: 'lakebook-table-description', text: info.description })
          : null,
        selected && this._actions(info),
        expanded && this._lineage(info),
        expanded &&
          h(
            'ul',
            { className: 'lakebook-columns', attrs: { role: 'group' } },
            node.columns.map(column => this._columnItem(column))
          )
      ]
    );
  }

  private _actions(info: ITableInfo): HTMLElement {
    const insert = h('button', {
      className: 'lakebook-action lakebook-insert-query jp-mod-styled jp-mod-accept',
      text: 'Insert query',
      title: `Add a %%lake cell querying ${info.name} below the active cell`,
      attrs: { type: 'button', 'data-action': 'insert-query' }
    });
    insert.addEventListener('click', () => this._options.onInsertQuery(info));
    const preview = h('button', {
      className: 'lakebook-action lakebook-preview jp-mod-styled',
      text: 'Preview',
      title: `Show the first rows of ${info.name}`,
      attrs: { type: 'button', 'data-action': 'preview' }
    });
    preview.addEventListener('click', () => this._options.onPreview(info));
    return h('div', { className: 'lakebook-table-actions' }, [insert, preview]);
  }

  private _lineage(info: ITableInfo): HTMLElement | null {
    const { upstream, downstream } = info.lineage;
    if (upstream.length === 0 && downstream.length === 0) {
      return null;
    }
    return h('div', { className: 'lakebook-lineage' }, [
      upstream.length
        ? h('div', { className: 'lakebook-upstream', text: `from ${upstream.join(', ')}` })
        : null,
      downstream.length
        ? h('div', { className: 'lakebook-downstream', text: `feeds ${downstream.join(', ')}` })
        : null
    ]);
  }

  private _columnItem(column: IColumnInfo): HTMLElement {
    const tooltip = [
      `${column.name}: ${column.type}${column.nullable ? '' : ' NOT NULL'}`,
      column.description,
      column.pii ? 'Contains personal data (PII).' : ''
    ]
      .filter(Boolean)
      .join('\n');
    return h(
      'li',
      {
        className: 'lakebook-column' + (column.pii ? ' lakebook-mod-pii' : ''),
        title: tooltip,
        attrs: { 'data-column': column.name, role: 'treeitem' }
      },
      [
        h('div', { className: 'lakebook-column-line' }, [
          h('span', { className: 'lakebook-column-name', text: column.name }),
          h('span', { className: 'lakebook-column-type', text: column.type }),
          column.pii
            ? h('span', {
                className: 'lakebook-pii-badge',
                text: 'PII',
                title: 'Contains personal data'
              })
            : null
        ]),
        column.description
          ? h('div', { className: 'lakebook-column-description', text: column.description })
          : null
      ]
    );
  }

  private _options: LakePanel.IOptions;
  private _search: HTMLInputElement;
  private _status: HTMLElement;
  private _body: HTMLElement;
  private _tree: ILakeTree | null = null;
  private _error: unknown = null;
  private _loading = false;
  private _generation = 0;
  private _query = '';
  private _selected: string | null = null;
  private _collapsedZones = new Set<string>();
  private _expandedTables = new Set<string>();
  private _relabelTimer: number | null = null;
}

/** Run `action` on click, and on Enter or Space when the element has focus. */
function onActivate(element: HTMLElement, action: () => void): void {
  element.addEventListener('click', action);
  element.addEventListener('keydown', event => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      action();
    }
  });
}
