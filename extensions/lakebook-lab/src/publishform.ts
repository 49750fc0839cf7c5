/**
 * "Publish this notebook": a dialog with the dashboard's name (the server's default
 * suggested). Accepting publishes it through the API; when the server refuses, the
 * dialog opens again with the name kept and the server's message shown.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { publishDashboard } from './api';
import { IDashboard, publishRequest } from './dashboards';
import { errorBlock, h } from './dom';

/** The form inside the dialog; `getValue()` is the name typed. */
export class PublishForm extends Widget implements Dialog.IBodyWidget<string> {
  constructor(name: string, problem: unknown) {
    super();
    this._name = name;
    this.addClass('lakebook-PublishForm');
    const input = h('input', {
      className: 'lakebook-field-input jp-mod-styled',
      attrs: { type: 'text', name: 'name', 'aria-label': 'Dashboard name' }
    });
    input.value = name;
    input.addEventListener('input', () => (this._name = input.value));
    this.node.append(
      problem ? errorBlock(problem) : '',
      h('label', { className: 'lakebook-field', attrs: { 'data-field': 'name' } }, [
        h('span', { className: 'lakebook-field-name', text: 'Dashboard name' }),
        input
      ]),
      h('div', {
        className: 'lakebook-empty',
        text: 'The dashboard server runs it with Voila; open it or share a link from the Dashboards panel.'
      })
    );
  }

  getValue(): string {
    return this._name;
  }

  private _name: string;
}

/** Ask for the name and publish the notebook; the dashboard, or null when the user cancels. */
export async function publishNotebookDialog(path: string, suggested: string): Promise<IDashboard | null> {
  let name = suggested;
  let problem: unknown = null;
  for (;;) {
    const result = await showDialog({
      title: `Publish ${path.split('/').pop()} as a dashboard`,
      body: new PublishForm(name, problem),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })],
      focusNodeSelector: 'input[name="name"]'
    });
    if (!result.button.accept || result.value === null) {
      return null;
    }
    name = result.value;
    try {
      return await publishDashboard(publishRequest(path, name));
    } catch (error) {
      problem = error;
    }
  }
}
