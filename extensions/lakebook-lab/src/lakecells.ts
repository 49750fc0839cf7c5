/**
 * `%%lake` cells are highlighted as SQL.
 *
 * A code cell's editor language follows its model's `mimeType`, which the
 * notebook sets to the kernel's language on load, on insert and when the kernel
 * changes. This watches every code cell of a notebook and keeps `text/x-sql` on
 * cells whose first line is `%%lake`, restoring the kernel's mime type when the
 * magic is removed. The mime type is not saved in the notebook file.
 */
import { ICellModel } from '@jupyterlab/cells';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { Notebook } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { Signal } from '@lumino/signaling';

import { isLakeCell } from './model';

export const SQL_MIME_TYPE = 'text/x-sql';

export class LakeCellHighlighter implements IDisposable {
  constructor(
    private readonly _notebook: Notebook,
    private readonly _languages: IEditorLanguageRegistry | null
  ) {
    _notebook.modelChanged.connect(this._onModelChanged, this);
    _notebook.disposed.connect(() => this.dispose());
    this._onModelChanged();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.disconnectReceiver(this);
  }

  private _onModelChanged(): void {
    const model = this._notebook.model;
    if (!model) {
      return;
    }
    model.cells.changed.connect((_, change) => {
      if (change.type === 'add' || change.type === 'set') {
        change.newValues.forEach(cell => this._watch(cell));
      }
    }, this);
    for (const cell of model.cells) {
      this._watch(cell);
    }
  }

  private _watch(cell: ICellModel): void {
    if (cell.type !== 'code' || this._watched.has(cell)) {
      return;
    }
    this._watched.add(cell);
    cell.contentChanged.connect(() => this._apply(cell), this);
    cell.mimeTypeChanged.connect(() => this._apply(cell), this);
    this._apply(cell);
  }

  /** The mime type the cell should have, or null when it is not ours to change. */
  private _wantedMimeType(cell: ICellModel): string | null {
    if (isLakeCell(cell.sharedModel.getSource())) {
      return SQL_MIME_TYPE;
    }
    if (cell.mimeType === SQL_MIME_TYPE) {
      return this._notebook.codeMimetype;
    }
    return null;
  }

  private _apply(cell: ICellModel): void {
    if (this._reasserting.has(cell) || cell.isDisposed) {
      return;
    }
    const wanted = this._wantedMimeType(cell);
    if (wanted === null || cell.mimeType === wanted) {
      return;
    }
    const previous = cell.mimeType;
    cell.mimeType = wanted;
    this._settle(cell, previous, wanted);
  }

  /**
   * The editor loads a language asynchronously on every mime type change, so
   * when the notebook sets the kernel's language and this sets SQL right after,
   * a first-time load of the kernel's language can finish last and win. Once
   * both languages are loaded the editor applies changes in order, so set the
   * pair again and let SQL (or the kernel's language) land last.
   */
  private _settle(cell: ICellModel, previous: string, wanted: string): void {
    if (!this._languages || this._settling.has(cell)) {
      return;
    }
    this._settling.add(cell);
    void Promise.all([
      this._languages.getLanguage(previous),
      this._languages.getLanguage(wanted)
    ])
      .catch(() => undefined)
      .then(() => {
        this._settling.delete(cell);
        if (this._isDisposed || cell.isDisposed || cell.mimeType !== wanted) {
          return;
        }
        this._reasserting.add(cell);
        try {
          cell.mimeType = previous;
          cell.mimeType = wanted;
        } finally {
          this._reasserting.delete(cell);
        }
      });
  }

  private _isDisposed = false;
  private _watched = new WeakSet<ICellModel>();
  private _settling = new WeakSet<ICellModel>();
  private _reasserting = new WeakSet<ICellModel>();
}
