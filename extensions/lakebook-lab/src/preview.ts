/**
 * The preview of a table's first rows, shown in the main area.
 */
import { Widget } from '@lumino/widgets';

import { fetchPreview } from './api';
import { errorBlock, h } from './dom';
import { IPreview, rowCountLabel } from './model';

export const PREVIEW_LIMIT = 100;

export class PreviewView extends Widget {
  constructor(readonly tableName: string) {
    super();
    this.addClass('lakebook-PreviewView');
    this.node.setAttribute('data-table', tableName);
  }

  /** Fetch the rows again and re-render. */
  async load(): Promise<void> {
    this.node.replaceChildren(
      h('div', { className: 'lakebook-loading', text: `Loading ${this.tableName}…` })
    );
    try {
      const preview = await fetchPreview(this.tableName, PREVIEW_LIMIT);
      this.node.replaceChildren(...renderPreview(preview));
    } catch (error) {
      this.node.replaceChildren(errorBlock(error));
    }
  }
}

function renderPreview(preview: IPreview): HTMLElement[] {
  const shown = preview.rows.length;
  const summary = h('div', {
    className: 'lakebook-preview-summary',
    text: `${preview.name}: first ${shown} of ${rowCountLabel(preview.row_count) || 'an unknown number of rows'}`
  });
  const head = h('thead', {}, [
    h(
      'tr',
      {},
      preview.columns.map(column =>
        h('th', { attrs: { 'data-column': column.name }, title: column.type }, [
          h('span', { className: 'lakebook-column-name', text: column.name }),
          h('span', { className: 'lakebook-column-type', text: column.type })
        ])
      )
    )
  ]);
  const body = h(
    'tbody',
    {},
    preview.rows.map(row => h('tr', {}, row.map(value => valueCell(value))))
  );
  return [
    summary,
    h('div', { className: 'lakebook-preview-scroll' }, [
      h('table', { className: 'lakebook-preview-table' }, [head, body])
    ])
  ];
}

function valueCell(value: unknown): HTMLElement {
  if (value === null || value === undefined) {
    return h('td', { className: 'lakebook-null', text: 'null' });
  }
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  const numeric = typeof value === 'number' || typeof value === 'bigint';
  return h('td', { className: numeric ? 'lakebook-number' : undefined, text });
}
