import {
  failureLabel,
  IJob,
  initialForm,
  INotebookParameter,
  IRun,
  jobCells,
  parameterValue,
  relativeTime,
  runCells,
  scheduleRequest,
  statusKind,
  suggestedJobName,
  triggerLabel
} from '../src/jobs';

const NOW = new Date('2024-03-05T12:00:00Z');

const REPORT: IJob = {
  name: 'report',
  notebook: 'notebooks/report.ipynb',
  schedule: '0 6 * * *',
  timezone: 'Europe/Paris',
  after: [],
  on_update: [],
  enabled: true,
  next_run: '2024-03-06T05:00:00Z',
  last_status: 'timed_out',
  last_run: 7
};

const FAILED: IRun = {
  id: 7,
  job: 'report',
  status: 'failed',
  trigger: 'cron',
  attempt: 2,
  max_attempts: 3,
  reason: 'cell 2 raised ValueError: boom 3',
  error_cell: 2,
  error_name: 'ValueError',
  error_value: 'boom 3',
  parameters: { n: 2 },
  scheduled_time: '2024-03-05T05:00:00Z',
  queued_at: '2024-03-05T05:00:00.2Z',
  started_at: '2024-03-05T05:00:01.5Z',
  finished_at: '2024-03-05T05:00:09Z',
  has_output: true,
  history: []
};

const PARAMETERS: INotebookParameter[] = [
  { name: 'n', type: 'int', default: '1', help: '' },
  { name: 'rate', type: 'float', default: '0.5', help: '' },
  { name: 'label', type: 'str', default: "'x'", help: '' },
  { name: 'verbose', type: 'bool', default: 'False', help: '' },
  { name: 'anything', type: null, default: 'None', help: '' }
];

describe('a job row', () => {
  it('shows cron with its zone, the next run from now and the last status', () => {
    expect(jobCells(REPORT, NOW)).toEqual({
      runs: 'notebook notebooks/report.ipynb',
      schedule: '0 6 * * * (Europe/Paris)',
      next: 'next in 17 h',
      last: 'timed out',
      lastKind: 'failed',
      enabled: 'enabled'
    });
  });

  it('says when a job is disabled, has no cron, or never ran', () => {
    const chained: IJob = { ...REPORT, schedule: null, timezone: null, next_run: null, last_status: null,
      after: ['nightly'], on_update: ['raw.flights'] };
    expect(jobCells(chained, NOW)).toMatchObject({
      schedule: 'after nightly · on update of raw.flights',
      next: 'no cron schedule',
      last: 'never run',
      lastKind: 'none'
    });
    expect(jobCells({ ...REPORT, enabled: false }, NOW).next).toBe('disabled');
    // an import job runs no notebook: its row names the import it pulls
    expect(jobCells({ ...REPORT, notebook: null, import: 'airport_status' }, NOW).runs).toBe('import airport_status');
    expect(triggerLabel({ ...chained, after: [], on_update: [] })).toBe('manual only');
  });
});

describe('relative times', () => {
  it.each([
    ['2024-03-05T12:00:20Z', 'in a moment'],
    ['2024-03-05T11:59:30Z', 'just now'],
    ['2024-03-05T12:05:00Z', 'in 5 min'],
    ['2024-03-05T09:00:00Z', '3 h ago'],
    ['2024-03-09T12:00:00Z', 'in 4 days'],
    [null, '–']
  ])('%s is %s', (iso, label) => {
    expect(relativeTime(iso, NOW)).toBe(label);
  });
});

describe('a run row', () => {
  it('shows status, trigger, times in UTC, the attempt and the failing cell', () => {
    expect(runCells(FAILED)).toEqual({
      status: 'failed',
      statusKind: 'failed',
      trigger: 'cron',
      scheduled: '2024-03-05 05:00:00 UTC',
      started: '2024-03-05 05:00:01 UTC',
      ended: '2024-03-05 05:00:09 UTC',
      attempt: 'attempt 2 of 3',
      error: 'cell 2: ValueError: boom 3'
    });
  });

  it('shows the reason of a failure without a cell, nothing for a success', () => {
    const timedOut = { ...FAILED, status: 'timed_out', error_cell: null, error_name: null, error_value: null,
      reason: 'the run took longer than its timeout (20 s) and was stopped' };
    expect(failureLabel(timedOut)).toBe('the run took longer than its timeout (20 s) and was stopped');
    expect(failureLabel({ ...timedOut, status: 'succeeded', reason: '' })).toBe('');
    const queued = runCells({ ...timedOut, status: 'queued', started_at: null, finished_at: null });
    expect([queued.statusKind, queued.started, queued.ended, queued.error]).toEqual(['pending', '–', '–', '']);
    expect(statusKind('something new')).toBe('none');
  });
});

describe('the schedule form', () => {
  it('names the job after the notebook', () => {
    expect(suggestedJobName('reports/Daily Report.ipynb')).toBe('daily_report');
    expect(suggestedJobName('2024 summary.ipynb')).toBe('summary');
    expect(suggestedJobName('Untitled1.ipynb')).toBe('untitled1');
    expect(suggestedJobName('!!!.ipynb')).toBe('notebook_job');
    expect(initialForm('a/Flights.ipynb', 'Europe/Paris')).toEqual({
      name: 'flights', cron: '0 6 * * *', timezone: 'Europe/Paris', parameters: {}, overwrite: false });
  });

  it('types parameter values by the notebook, and leaves a mistyped one for the server to name', () => {
    const [n, rate, label, verbose, anything] = PARAMETERS;
    expect(parameterValue(n, '3')).toBe(3);
    expect(parameterValue(rate, '2.5')).toBe(2.5);
    expect(parameterValue(label, '42')).toBe('42');
    expect(parameterValue(verbose, 'True')).toBe(true);
    expect(parameterValue(anything, '[1, 2]')).toEqual([1, 2]);
    expect(parameterValue(anything, 'None')).toBeNull();
    expect(parameterValue(n, 'five')).toBe('five');
  });

  it('builds the request with only the parameters given', () => {
    const request = scheduleRequest('notebooks/report.ipynb', PARAMETERS, {
      name: ' nightly ',
      cron: '30  2 * *   *',
      timezone: '',
      parameters: { n: '4', label: 'night', rate: '  ' },
      overwrite: true
    });
    expect(request).toEqual({
      name: 'nightly',
      notebook: 'notebooks/report.ipynb',
      cron: '30 2 * * *',
      timezone: 'UTC',
      parameters: { n: 4, label: 'night' },
      overwrite: true
    });
  });
});
