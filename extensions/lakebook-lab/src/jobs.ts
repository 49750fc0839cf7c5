/**
 * What the Jobs panel and the "Schedule this notebook" form show and send, as plain
 * data: the API's shapes, a job's cells, a run's cells, the form's parameter values
 * and request. Kept free of JupyterLab and the DOM so the unit tests run in Node;
 * jobspanel.ts and scheduleform.ts only turn this into elements.
 */

/** One job as `GET /lakebook/api/jobs` lists it. */
export interface IJob {
  name: string;
  /** The notebook a notebook job runs (null for an import job). */
  notebook: string | null;
  /** The import (imports/NAME.yaml) an import job runs instead of a notebook. */
  import?: string | null;
  schedule: string | null;
  timezone: string | null;
  after: string[];
  on_update: string[];
  enabled: boolean;
  next_run: string | null;
  last_status: string | null;
  last_run: number | null;
}

/** `GET /lakebook/api/jobs`: the jobs, the files that do not load, the scheduler. */
export interface IJobs {
  jobs: IJob[];
  problems: Record<string, string>;
  scheduler: string | null;
}

/** One attempt of a run, as the run's `history` keeps it. */
export interface IAttempt {
  attempt: number;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  reason: string;
  error_name: string | null;
}

/** One run as `GET /lakebook/api/jobs/{name}/runs` lists it. */
export interface IRun {
  id: number;
  job: string;
  status: string;
  trigger: string;
  attempt: number;
  max_attempts: number;
  reason: string;
  error_cell: number | null;
  error_name: string | null;
  error_value: string | null;
  parameters: Record<string, unknown>;
  scheduled_time: string | null;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  has_output: boolean;
  history: IAttempt[];
}

export interface IRuns {
  job: string;
  runs: IRun[];
}

/** `POST /lakebook/api/jobs/{name}/runs`: the queued run and who runs it. */
export interface IRunStarted {
  run: IRun;
  runner: 'scheduler' | 'lab';
  scheduler: string | null;
}

/** `GET /lakebook/api/jobs/{name}/runs/{id}/output` */
export interface IRunOutput {
  job: string;
  run_id: number;
  status: string;
  notebook: string | null;
  html: string;
}

/** One parameter of a notebook's `parameters` cell. */
export interface INotebookParameter {
  name: string;
  type: string | null;
  default: string | null;
  help: string;
}

export interface INotebookParameters {
  notebook: string;
  parameters: INotebookParameter[];
}

/** The body of `POST /lakebook/api/jobs`. */
export interface IScheduleRequest {
  name: string;
  notebook: string;
  cron: string;
  timezone: string;
  parameters: Record<string, unknown>;
  overwrite: boolean;
}

/** The form's texts, before they become a request. */
export interface IScheduleForm {
  name: string;
  cron: string;
  timezone: string;
  parameters: Record<string, string>;
  overwrite: boolean;
}

export type StatusKind = 'ok' | 'pending' | 'failed' | 'none';

const STATUS_KINDS: Record<string, StatusKind> = {
  succeeded: 'ok',
  queued: 'pending',
  running: 'pending',
  failed: 'failed',
  timed_out: 'failed',
  cancelled: 'failed'
};

/** A run status's kind, for its colour. */
export function statusKind(status: string | null): StatusKind {
  return status === null ? 'none' : (STATUS_KINDS[status] ?? 'none');
}

/** "timed_out" -> "timed out"; no status yet -> "never run". */
export function statusLabel(status: string | null): string {
  return status === null ? 'never run' : status.replace(/_/g, ' ');
}

/** A time relative to `now`: "in 5 min", "3 h ago", "just now"; "–" for none. */
export function relativeTime(iso: string | null, now: Date): string {
  if (!iso) {
    return '–';
  }
  const seconds = (Date.parse(iso) - now.getTime()) / 1000;
  const size = Math.abs(seconds);
  if (size < 45) {
    return seconds > 0 ? 'in a moment' : 'just now';
  }
  const amount =
    size < 3600
      ? `${Math.round(size / 60)} min`
      : size < 86400 * 2
        ? `${Math.round(size / 3600)} h`
        : `${Math.round(size / 86400)} days`;
  return seconds > 0 ? `in ${amount}` : `${amount} ago`;
}

/** An ISO time as "2024-03-05 06:00:00 UTC" (the API's times are UTC). */
export function utcLabel(iso: string | null): string {
  if (!iso) {
    return '–';
  }
  return new Date(Date.parse(iso)).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
}

/** What starts a job: its cron and zone, the jobs it follows, the tables it watches. */
export function triggerLabel(job: IJob): string {
  const parts: string[] = [];
  if (job.schedule) {
    parts.push(`${job.schedule} (${job.timezone ?? 'UTC'})`);
  }
  if (job.after.length) {
    parts.push(`after ${job.after.join(', ')}`);
  }
  if (job.on_update.length) {
    parts.push(`on update of ${job.on_update.join(', ')}`);
  }
  return parts.join(' · ') || 'manual only';
}

/** The cells of a job's row, as text. */
export interface IJobCells {
  /** What the job runs: its notebook, or the import it pulls. */
  runs: string;
  schedule: string;
  next: string;
  last: string;
  lastKind: StatusKind;
  enabled: string;
}

export function jobCells(job: IJob, now: Date): IJobCells {
  const next = !job.enabled
    ? 'disabled'
    : job.next_run
      ? `next ${relativeTime(job.next_run, now)}`
      : 'no cron schedule';
  return {
    runs: job.import ? `import ${job.import}` : `notebook ${job.notebook ?? ''}`,
    schedule: triggerLabel(job),
    next,
    last: statusLabel(job.last_status),
    lastKind: statusKind(job.last_status),
    enabled: job.enabled ? 'enabled' : 'disabled'
  };
}

/** The cells of a run's row in a job's history, as text. */
export interface IRunCells {
  status: string;
  statusKind: StatusKind;
  trigger: string;
  scheduled: string;
  started: string;
  ended: string;
  attempt: string;
  error: string;
}

export function runCells(run: IRun): IRunCells {
  return {
    status: statusLabel(run.status),
    statusKind: statusKind(run.status),
    trigger: run.trigger,
    scheduled: utcLabel(run.scheduled_time),
    started: utcLabel(run.started_at),
    ended: utcLabel(run.finished_at),
    attempt: `attempt ${run.attempt} of ${run.max_attempts}`,
    error: failureLabel(run)
  };
}

/** Why a run failed: its failing cell and error, else its reason; '' for a run that did not. */
export function failureLabel(run: IRun): string {
  if (run.error_cell !== null && run.error_name) {
    return `cell ${run.error_cell}: ${run.error_name}: ${run.error_value ?? ''}`.trim();
  }
  return statusKind(run.status) === 'failed' ? run.reason : '';
}

/** A job name made from a notebook's path: "reports/Daily Report.ipynb" -> "daily_report". */
export function suggestedJobName(path: string): string {
  const stem = (path.split('/').pop() ?? '').replace(/\.ipynb$/, '');
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^[^a-z]+/, '')
    .replace(/_+$/, '')
    .slice(0, 63);
  return name || 'notebook_job';
}

/**
 * A parameter's text as the value sent: a `str` parameter as it is; any other
 * as JSON when it parses (3, 2.5, true, [1, 2], {"a": 1}, null), else as it is,
 * so the server names a value of the wrong type instead of the form hiding it.
 */
export function parameterValue(parameter: INotebookParameter, text: string): unknown {
  if (parameter.type === 'str') {
    return text;
  }
  const python: Record<string, string> = { True: 'true', False: 'false', None: 'null' };
  try {
    return JSON.parse(python[text.trim()] ?? text);
  } catch {
    return text;
  }
}

/**
 * The request the form makes: its texts trimmed, and only the parameters given a
 * value (the others keep the notebook's defaults).
 */
export function scheduleRequest(
  notebook: string,
  parameters: INotebookParameter[],
  form: IScheduleForm
): IScheduleRequest {
  const values: Record<string, unknown> = {};
  for (const parameter of parameters) {
    const text = form.parameters[parameter.name] ?? '';
    if (text.trim() !== '') {
      values[parameter.name] = parameterValue(parameter, text);
    }
  }
  return {
    name: form.name.trim(),
    notebook,
    cron: form.cron.trim().replace(/\s+/g, ' '),
    timezone: form.timezone.trim() || 'UTC',
    parameters: values,
    overwrite: form.overwrite
  };
}

/** The form's starting texts for a notebook: a name from its path, a daily cron, the zone given. */
export function initialForm(path: string, timezone: string): IScheduleForm {
  return { name: suggestedJobName(path), cron: '0 6 * * *', timezone, parameters: {}, overwrite: false };
}
