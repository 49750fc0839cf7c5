/**
 * A run's output notebook as its HTML rendering, in a main-area tab. The HTML is shown
 * in a sandboxed frame (no scripts, an origin of its own): what a notebook printed
 * cannot act as the Lab.
 */
import { Widget } from '@lumino/widgets';

import { IRunOutput } from './jobs';

export class RunOutputView extends Widget {
  constructor(output: IRunOutput) {
    super();
    this.addClass('lakebook-RunOutput');
    const frame = document.createElement('iframe');
    frame.setAttribute('sandbox', '');
    frame.setAttribute('title', `Output of run ${output.run_id} of ${output.job}`);
    frame.setAttribute('data-run-output', String(output.run_id));
    frame.srcdoc = output.html;
    this.node.appendChild(frame);
  }
}
