/**
 * The Jobs panel in the left sidebar: a row per notebook job (what triggers it, next
 * run, last status), with "Run now", enable/disable and its history (status, trigger,
 * scheduled/started/ended, attempt, failing cell) whose runs open their output. Read
 * again every few seconds while shown, and redrawn only when what it shows changed.
 *
 * Plain DOM with `data-job` / `data-run` / `data-cell` / `data-action` attributes so
 * browser tests can find things; every text comes from ./jobs.
 */
import { Widget } from '@lumino/widgets';

import { cancelRun, fetchJobs, fetchRuns, setJobEnabled, startRun } from './api';
import { errorBlock, h, panelHeader } from './dom';
import { IJob, IJobs, IRun, jobCells, runCells } from './jobs';
import { pollWhileShown, Poller } from './polling';

export const JOBS_PANEL_ID = 'lakebook-jobs-panel';

/** How often jobs and open histories are read again while the panel is shown. */
export const JOBS_REFRESH_MS = 3000;

export namespace JobsPanel {
  export interface IOptions {
    /** Open a run's output notebook (or its HTML rendering). */
    onOpenOutput: (job: string, runId: number) => void;
  }
}

export class JobsPanel extends Widget {
  constructor(options: JobsPanel.IOptions) {
    super();
    this._options = options;
    this.id = JOBS_PANEL_ID;
    this.addClass('lakebook-JobsPanel');
    this._status = h('div', { className: 'lakebook-status' });
    this._body = h('div', { className: 'lakebook-body' });
    this.node.append(panelHeader('Jobs', 'Refresh the jobs', () => void this.refresh()), this._status, this._body);
    pollWhileShown(this, new Poller(() => this.refresh(), JOBS_REFRESH_MS));
  }

  /** The jobs as last loaded, or null before the first successful load. */
  get jobs(): IJobs | null {
    return this._jobs;
  }

  /** Read the jobs, and the history of each job whose history is open, again. */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    let error: unknown = null;
    try {
      const jobs = await fetchJobs();
      const histories = await Promise.all([...this._open].map(name => fetchRuns(name)));
      if (generation !== this._generation) {
        return;
      }
      this._jobs = jobs;
      this._runs = new Map(histories.map(history => [history.job, history.runs]));
    } catch (caught) {
      error = caught;
    }
    if (generation === this._generation) {
      this._error = error;
      this._render();
    }
  }

  /** Open a job's history (and read it). */
  showHistory(name: string): Promise<void> {
    this._open.add(name);
    return this.refresh();
  }

  /** Run an action of a row, then show what it changed (or its error). */
  private async _act(work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
      this._notice = null;
    } catch (error) {
      this._notice = error;
    }
    await this.refresh();
  }

  private _render(): void {
    const now = new Date();
    const jobs = this._jobs?.jobs ?? [];
    const shown = JSON.stringify([this._jobs, [...this._runs], String(this._error), String(this._notice),
      jobs.map(job => jobCells(job, now).next)]);
    if (shown === this._shown) {
      return; // nothing changed: the buttons stay under the pointer
    }
    this._shown = shown;
    this._status.replaceChildren(...this._statusLines());
    const content: Node[] = [this._error, this._notice].filter(e => e).map(e => errorBlock(e));
    if (this._jobs && jobs.length === 0) {
      content.push(h('div', {
        className: 'lakebook-empty',
        text: 'No job yet. Use "Schedule" on a notebook\'s toolbar, or add a definition to the jobs folder.'
      }));
    }
    content.push(...jobs.map(job => this._row(job, now)));
    this._body.replaceChildren(...content);
  }

  private _statusLines(): HTMLElement[] {
    if (!this._jobs) {
      return [];
    }
    const scheduler = this._jobs.scheduler
      ? h('div', { className: 'lakebook-scheduler', text: 'Scheduler running', title: this._jobs.scheduler })
      : h('div', {
          className: 'lakebook-scheduler lakebook-mod-down',
          text: 'No scheduler is running: schedules wait (lakebook up starts one); "Run now" runs a job from here.'
        });
    const problems = Object.entries(this._jobs.problems).map(([name, problem]) =>
      h('div', { className: 'lakebook-job-problem', text: `${name}: ${problem}`, attrs: { 'data-problem': name } })
    );
    return [scheduler, ...problems];
  }

  private _row(job: IJob, now: Date): HTMLElement {
    const cells = jobCells(job, now);
    const cell = (name: 'runs' | 'schedule' | 'next' | 'last', kind = '') =>
      h('span', { className: `lakebook-job-${name} ${kind}`, text: cells[name], attrs: { 'data-cell': name } });
    const open = this._open.has(job.name);
    const history = open ? this._history(job.name) : null;
    return h('div', {
      className: `lakebook-job${job.enabled ? '' : ' lakebook-mod-disabled'}`,
      attrs: { 'data-job': job.name, 'data-last-status': job.last_status ?? '', 'data-enabled': String(job.enabled) }
    }, [
      h('div', { className: 'lakebook-job-line' }, [
        h('span', { className: 'lakebook-job-name', text: job.name, title: cells.runs }),
        cell('last', `lakebook-mod-${cells.lastKind}`)
      ]),
      h('div', { className: 'lakebook-job-figures' }, [cell('runs'), cell('schedule'), cell('next')]),
      h('div', { className: 'lakebook-job-actions' }, [
        this._button('Run now', 'run', () => this._runNow(job.name), !job.enabled),
        this._button(job.enabled ? 'Disable' : 'Enable', 'toggle', () => setJobEnabled(job.name, !job.enabled)),
        this._button(open ? 'Hide history' : 'History', 'history', async () => {
          open ? this._open.delete(job.name) : this._open.add(job.name);
        })
      ]),
      history
    ]);
  }

  private async _runNow(name: string): Promise<void> {
    this._open.add(name);
    await startRun(name);
  }

  private _button(label: string, action: string, work: () => Promise<unknown>, disabled = false): HTMLElement {
    const button = h('button', {
      className: 'lakebook-job-button jp-mod-styled',
      text: label,
      attrs: { type: 'button', 'data-action': action }
    });
    button.disabled = disabled;
    button.addEventListener('click', () => void this._act(work));
    return button;
  }

  private _history(name: string): HTMLElement {
    const runs = this._runs.get(name);
    if (!runs) {
      return h('div', { className: 'lakebook-empty', text: 'Loading the history…' });
    }
    if (!runs.length) {
      return h('div', { className: 'lakebook-empty', attrs: { 'data-history': name }, text: 'No run yet.' });
    }
    return h('div', { className: 'lakebook-job-history', attrs: { 'data-history': name } },
      runs.map(run => this._run(name, run)));
  }

  private _run(name: string, run: IRun): HTMLElement {
    const cells = runCells(run);
    const text = (key: keyof typeof cells, className = '') =>
      h('span', { className: `lakebook-run-${key} ${className}`, text: String(cells[key]), attrs: { 'data-cell': key } });
    const actions: HTMLElement[] = [];
    if (run.has_output) {
      actions.push(this._button('Open output', 'open-output', async () => this._options.onOpenOutput(name, run.id)));
    }
    if (run.status === 'queued' || run.status === 'running') {
      actions.push(this._button('Cancel', 'cancel', () => cancelRun(name, run.id)));
    }
    return h('div', { className: 'lakebook-run', attrs: { 'data-run': String(run.id), 'data-status': run.status } }, [
      h('div', { className: 'lakebook-run-line' }, [
        h('span', { className: 'lakebook-run-id', text: `#${run.id}` }),
        text('status', `lakebook-mod-${cells.statusKind}`),
        text('trigger'),
        text('attempt')
      ]),
      h('div', { className: 'lakebook-run-times' }, [
        h('span', { text: 'scheduled ' }), text('scheduled'),
        h('span', { text: ' · started ' }), text('started'),
        h('span', { text: ' · ended ' }), text('ended')
      ]),
      cells.error ? h('div', { className: 'lakebook-run-error' }, [text('error')]) : null,
      actions.length ? h('div', { className: 'lakebook-run-actions' }, actions) : null
    ]);
  }

  private _options: JobsPanel.IOptions;
  private _status: HTMLElement;
  private _body: HTMLElement;
  private _jobs: IJobs | null = null;
  private _runs = new Map<string, IRun[]>();
  private _open = new Set<string>();
  private _error: unknown = null;
  private _notice: unknown = null;
  private _generation = 0;
  private _shown = '';
}
