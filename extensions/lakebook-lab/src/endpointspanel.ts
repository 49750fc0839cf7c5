/**
 * The Endpoints panel in the left sidebar: a row per model endpoint (status, model
 * and version, requests, p50/p99 latency, errors), refreshed every few seconds while
 * the panel is shown, and under each a "try it" form whose fields come from the
 * endpoint's request schema, prefilled with the model's example.
 *
 * Plain DOM with `data-endpoint` / `data-field` / `data-cell` attributes so browser
 * tests can find things; every text comes from ./endpoints.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { fetchEndpoints, fetchEndpointSchema, postPrediction } from './api';
import { errorBlock, h, panelHeader } from './dom';
import {
  detailLines,
  endpointCells,
  exampleText,
  IEndpoint,
  IEndpoints,
  IEndpointSchema,
  inputType,
  IPrediction,
  predictionLines,
  requestBody
} from './endpoints';
import { LakeApiError } from './errors';

export const ENDPOINTS_PANEL_ID = 'lakebook-endpoints-panel';

/** How often the figures are read again while the panel is shown. */
export const ENDPOINTS_REFRESH_MS = 3000;

export namespace EndpointsPanel {
  /** Where the data comes from: the server API unless a test passes another. */
  export interface IOptions {
    loadEndpoints?: () => Promise<IEndpoints>;
    loadSchema?: (name: string) => Promise<IEndpointSchema>;
    predict?: (name: string, body: Record<string, unknown>) => Promise<IPrediction>;
  }
}

/** The "try it" state of one endpoint: its schema, the form's texts, the last answer. */
interface ITrial {
  schema: IEndpointSchema | null;
  texts: Record<string, string>;
  answer: IPrediction | null;
  error: unknown;
  busy: boolean;
  node: HTMLElement;
}

export class EndpointsPanel extends Widget {
  constructor(options: EndpointsPanel.IOptions = {}) {
    super();
    this._options = options;
    this.id = ENDPOINTS_PANEL_ID;
    this.addClass('lakebook-EndpointsPanel');
    this._status = h('div', { className: 'lakebook-status' });
    this._body = h('div', { className: 'lakebook-body' });
    this.node.append(
      panelHeader('Endpoints', 'Refresh the endpoints', () => void this.refresh()),
      this._status,
      this._body
    );
  }

  /** The endpoints as last loaded, or null before the first successful load. */
  get endpoints(): IEndpoints | null {
    return this._endpoints;
  }

  /** Read the endpoints again and re-render their rows (the forms keep their texts). */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    try {
      const endpoints = await (this._options.loadEndpoints ?? fetchEndpoints)();
      if (generation === this._generation) {
        this._endpoints = endpoints;
        this._error = null;
      }
    } catch (error) {
      if (generation === this._generation) {
        this._error = error;
      }
    }
    if (generation === this._generation) {
      this._render();
    }
  }

  dispose(): void {
    this._stopTimer();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
    this._stopTimer();
    this._timer = window.setInterval(() => void this.refresh(), ENDPOINTS_REFRESH_MS);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopTimer();
  }

  private _stopTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _render(): void {
    const status: Node[] = [];
    if (this._endpoints && !this._endpoints.running) {
      status.push(
        errorBlock(
          new LakeApiError(
            'The model endpoints are not running.',
            this._endpoints.hint ?? 'lakebook serve start or lakebook up'
          )
        )
      );
    }
    this._status.replaceChildren(...status);
    const content: Node[] = this._error ? [errorBlock(this._error)] : [];
    const rows = this._endpoints?.endpoints ?? [];
    if (this._endpoints && rows.length === 0) {
      content.push(
        h('div', {
          className: 'lakebook-empty',
          text: 'No endpoint yet. Declare one under serving.endpoints in lakebook.yaml, or run lakebook serve deploy.'
        })
      );
    }
    content.push(...rows.map(endpoint => this._row(endpoint)));
    // Nodes that stay are left in place, so a form being typed in keeps its focus.
    const current = Array.from(this._body.childNodes);
    if (current.length !== content.length || content.some((node, i) => node !== current[i])) {
      this._body.replaceChildren(...content);
    }
  }

  /** The endpoint's row, updated in place: its figures change, its form stays. */
  private _row(endpoint: IEndpoint): HTMLElement {
    let row = this._rows.get(endpoint.name);
    if (!row) {
      row = h('div', { attrs: { 'data-endpoint': endpoint.name } }, [h('div'), h('div')]);
      this._rows.set(endpoint.name, row);
    }
    const cells = endpointCells(endpoint);
    row.className = `lakebook-endpoint lakebook-mod-${cells.statusKind}`;
    row.setAttribute('data-status', endpoint.status);
    row.setAttribute('data-version', endpoint.version ?? '');
    const cell = (name: keyof typeof cells, title = '') =>
      h('span', {
        className: `lakebook-endpoint-${name}`,
        text: String(cells[name]),
        title,
        attrs: { 'data-cell': name }
      });
    row.firstElementChild!.replaceWith(
      h('div', { className: 'lakebook-endpoint-summary' }, [
        h('div', { className: 'lakebook-endpoint-line' }, [
          h('span', { className: 'lakebook-endpoint-name', text: endpoint.name, title: endpoint.url }),
          cell('status', endpoint.problem ?? ''),
          cell('model', endpoint.uri ?? endpoint.model)
        ]),
        h('div', { className: 'lakebook-endpoint-figures' }, [cell('requests'), cell('latency'), cell('errors')]),
        endpoint.problem ? h('div', { className: 'lakebook-endpoint-problem', text: endpoint.problem }) : null
      ])
    );
    const trial = this._trial(endpoint);
    const shown = endpoint.status === 'RUNNING' ? trial.node : h('div');
    if (row.lastElementChild !== shown) {
      row.lastElementChild!.replaceWith(shown);
    }
    return row;
  }

  /** The endpoint's "try it" state, made (and its schema asked for) on first sight. */
  private _trial(endpoint: IEndpoint): ITrial {
    let trial = this._trials.get(endpoint.name);
    if (!trial) {
      trial = { schema: null, texts: {}, answer: null, error: null, busy: false, node: h('div') };
      this._trials.set(endpoint.name, trial);
    }
    const stale = trial.schema !== null && trial.schema.version !== endpoint.version;
    if (endpoint.status === 'RUNNING' && (trial.schema === null || stale) && !trial.busy) {
      void this._loadSchema(endpoint.name, trial);
    }
    return trial;
  }

  private async _loadSchema(name: string, trial: ITrial): Promise<void> {
    trial.busy = true;
    try {
      trial.schema = await (this._options.loadSchema ?? fetchEndpointSchema)(name);
      for (const field of trial.schema.fields) {
        trial.texts[field.name] ??= exampleText(field);
      }
      trial.error = null;
    } catch (error) {
      trial.error = error;
    } finally {
      trial.busy = false;
      this._renderTrial(name, trial);
    }
  }

  private async _predict(name: string, trial: ITrial): Promise<void> {
    if (!trial.schema || trial.busy) {
      return;
    }
    trial.busy = true;
    this._renderTrial(name, trial);
    try {
      const body = requestBody(trial.schema.fields, trial.texts);
      trial.answer = await (this._options.predict ?? postPrediction)(name, body);
      trial.error = null;
    } catch (error) {
      trial.answer = null;
      trial.error = error;
    } finally {
      trial.busy = false;
      this._renderTrial(name, trial);
    }
  }

  private _renderTrial(name: string, trial: ITrial): void {
    const fields = (trial.schema?.fields ?? []).map(field => {
      const input = h('input', {
        className: 'lakebook-field-input jp-mod-styled',
        attrs: {
          type: inputType(field),
          name: field.name,
          placeholder: field.format ?? field.type,
          'aria-label': field.name,
          ...(inputType(field) === 'number' ? { step: 'any' } : {})
        }
      });
      input.value = trial.texts[field.name] ?? '';
      input.addEventListener('input', () => {
        trial.texts[field.name] = input.value;
      });
      return h('label', { className: 'lakebook-field', attrs: { 'data-field': field.name } }, [
        h('span', { className: 'lakebook-field-name', text: field.required ? field.name : `${field.name} (optional)` }),
        input
      ]);
    });
    const button = h('button', {
      className: 'lakebook-predict jp-mod-styled jp-mod-accept',
      text: trial.busy ? 'Predicting…' : 'Predict',
      attrs: { type: 'submit', 'data-action': 'predict' }
    });
    button.disabled = trial.busy || !trial.schema;
    const form = h('form', { className: 'lakebook-try-it', attrs: { 'data-try-it': name } }, [
      h('div', { className: 'lakebook-try-it-title', text: 'Try it' }),
      ...fields,
      button,
      this._outcome(trial)
    ]);
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._predict(name, trial);
    });
    trial.node.replaceChildren(form);
  }

  private _outcome(trial: ITrial): HTMLElement | null {
    if (trial.error) {
      const details = detailLines((trial.error as LakeApiError).details);
      const block = errorBlock(trial.error);
      block.classList.add('lakebook-prediction-error');
      block.append(...details.map(line => h('div', { className: 'lakebook-error-detail', text: line })));
      return block;
    }
    if (!trial.answer) {
      return null;
    }
    return h(
      'div',
      { className: 'lakebook-prediction', attrs: { 'data-version': trial.answer.version } },
      predictionLines(trial.answer).map(line => h('div', { text: line }))
    );
  }

  private _options: EndpointsPanel.IOptions;
  private _status: HTMLElement;
  private _body: HTMLElement;
  private _endpoints: IEndpoints | null = null;
  private _error: unknown = null;
  private _generation = 0;
  private _trials = new Map<string, ITrial>();
  private _rows = new Map<string, HTMLElement>();
  private _timer: number | null = null;
}
