/**
 * "Schedule this notebook": a dialog with the job's name, cron, time zone and the
 * notebook's parameters (read from its `parameters` cell by the server). Accepting
 * writes `jobs/<name>.yaml` through the API; when the server refuses, the dialog opens
 * again with the texts kept and the server's message (it names the field) shown.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { fetchNotebookParameters, scheduleNotebook } from './api';
import { errorBlock, h } from './dom';
import {
  IJob,
  initialForm,
  INotebookParameter,
  IScheduleForm,
  scheduleRequest
} from './jobs';

/** The form inside the dialog; `getValue()` is what the dialog resolves with. */
export class ScheduleForm extends Widget implements Dialog.IBodyWidget<IScheduleForm> {
  constructor(parameters: INotebookParameter[], form: IScheduleForm, problem: unknown) {
    super();
    this._form = { ...form, parameters: { ...form.parameters } };
    this.addClass('lakebook-ScheduleForm');
    const fields = [
      this._field('name', 'Job name', 'daily_report'),
      this._field('cron', 'Cron (minute hour day month weekday)', '0 6 * * *'),
      this._field('timezone', 'Time zone', 'UTC')
    ];
    const overwrite = h('input', { attrs: { type: 'checkbox', name: 'overwrite' } });
    overwrite.checked = form.overwrite;
    overwrite.addEventListener('change', () => (this._form.overwrite = overwrite.checked));
    this.node.append(
      problem ? errorBlock(problem) : '',
      ...fields,
      h('div', { className: 'lakebook-form-section', text: 'Parameters' }),
      ...(parameters.length
        ? parameters.map(parameter => this._parameter(parameter))
        : [h('div', { className: 'lakebook-empty', text: 'The notebook has no parameters cell.' })]),
      h('label', { className: 'lakebook-field lakebook-field-check' }, [
        overwrite,
        h('span', { text: 'Replace a job of this name' })
      ])
    );
  }

  getValue(): IScheduleForm {
    return this._form;
  }

  private _field(key: 'name' | 'cron' | 'timezone', label: string, placeholder: string): HTMLElement {
    const input = h('input', {
      className: 'lakebook-field-input jp-mod-styled',
      attrs: { type: 'text', name: key, placeholder, 'aria-label': label }
    });
    input.value = this._form[key];
    input.addEventListener('input', () => (this._form[key] = input.value));
    return h('label', { className: 'lakebook-field', attrs: { 'data-field': key } }, [
      h('span', { className: 'lakebook-field-name', text: label }),
      input
    ]);
  }

  private _parameter(parameter: INotebookParameter): HTMLElement {
    const input = h('input', {
      className: 'lakebook-field-input jp-mod-styled',
      attrs: {
        type: 'text',
        name: `parameter-${parameter.name}`,
        placeholder: `default ${parameter.default ?? ''}`,
        'aria-label': parameter.name
      }
    });
    input.value = this._form.parameters[parameter.name] ?? '';
    input.addEventListener('input', () => (this._form.parameters[parameter.name] = input.value));
    const label = parameter.type ? `${parameter.name} (${parameter.type})` : parameter.name;
    return h('label', { className: 'lakebook-field', attrs: { 'data-parameter': parameter.name } }, [
      h('span', { className: 'lakebook-field-name', text: label, title: parameter.help }),
      input
    ]);
  }

  private _form: IScheduleForm;
}

/** The user's time zone as the browser knows it (UTC when it does not say). */
export function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/**
 * Ask for the job's settings and write its definition; the job, or null when the
 * user cancels.
 */
export async function scheduleNotebookDialog(path: string): Promise<IJob | null> {
  let parameters: INotebookParameter[] = [];
  let problem: unknown = null;
  try {
    parameters = (await fetchNotebookParameters(path)).parameters;
  } catch (error) {
    problem = error;
  }
  let form = initialForm(path, browserTimeZone());
  for (;;) {
    const result = await showDialog({
      title: `Schedule ${path.split('/').pop()}`,
      body: new ScheduleForm(parameters, form, problem),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Schedule' })],
      focusNodeSelector: 'input[name="name"]'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    form = result.value;
    try {
      return await scheduleNotebook(scheduleRequest(path, parameters, form));
    } catch (error) {
      problem = error;
    }
  }
}
