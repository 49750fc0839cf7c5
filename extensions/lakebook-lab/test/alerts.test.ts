import {
  alertAction,
  alertMessage,
  autoClose,
  ILabAlert,
  MAX_BACKOFF_MS,
  MAX_SHOWN,
  MESSAGE_MAX,
  moreText,
  newAlerts,
  nextDelay,
  notificationType,
  POLL_MS
} from '../src/alerts';

function alert(id: number, fields: Partial<ILabAlert> = {}): ILabAlert {
  return {
    id,
    created_at: '2024-03-05T12:00:00Z',
    channel: 'lab',
    severity: 'critical',
    status: 'firing',
    title: `job nightly: run ${id} failure`,
    text: `ValueError: boom ${id}\noutput notebook: /ws/.lakebook/runs/jobs/nightly/${id}-1/output.ipynb`,
    labels: { job: 'nightly', run: String(id), event: 'failure', trigger: 'manual' },
    url: null,
    read: false,
    ...fields
  };
}

describe('newAlerts', () => {
  it('picks the unread alerts above the last seen id, oldest first, and moves past every id', () => {
    const answer = [alert(9), alert(8, { read: true }), alert(7), alert(4)];
    const found = newAlerts(answer, 4);
    expect(found.show.map(a => a.id)).toEqual([7, 9]);
    expect(found.more).toBe(0);
    expect(found.lastSeen).toBe(9);
  });

  it('shows each alert once: the same answer again has nothing new', () => {
    const answer = [alert(3), alert(2)];
    const first = newAlerts(answer, 0);
    expect(first.show.map(a => a.id)).toEqual([2, 3]);
    expect(newAlerts(answer, first.lastSeen)).toEqual({ show: [], more: 0, lastSeen: 3 });
  });

  it('shows the newest few and counts the rest', () => {
    const answer = Array.from({ length: MAX_SHOWN + 3 }, (_, i) => alert(20 - i));
    const found = newAlerts(answer, 0);
    expect(found.show.map(a => a.id)).toEqual([16, 17, 18, 19, 20]);
    expect(found.more).toBe(3);
    expect(moreText(found.more)).toBe('3 more new alerts: `lakebook alerts list` lists them');
    expect(moreText(1)).toBe('1 more new alert: `lakebook alerts list` lists them');
  });

  it('keeps the last seen id when the inbox has nothing', () => {
    expect(newAlerts([], 12)).toEqual({ show: [], more: 0, lastSeen: 12 });
  });
});

describe('notificationType', () => {
  it.each([
    ['critical', 'firing', 'error'],
    ['warning', 'firing', 'warning'],
    ['info', 'firing', 'info'],
    ['info', 'resolved', 'success'],
    ['critical', 'resolved', 'success']
  ] as const)('%s %s -> %s', (severity, status, expected) => {
    expect(notificationType(alert(1, { severity, status }))).toBe(expected);
  });

  it('keeps critical alerts until dismissed, closes the others', () => {
    expect(autoClose(alert(1))).toBe(false);
    expect(autoClose(alert(1, { severity: 'warning' }))).toBeGreaterThan(0);
  });
});

describe('alertMessage', () => {
  it('is the title and the first line of the text', () => {
    expect(alertMessage(alert(5))).toBe('job nightly: run 5 failure: ValueError: boom 5');
    expect(alertMessage(alert(5, { text: '' }))).toBe('job nightly: run 5 failure');
    expect(alertMessage(alert(5, { text: '\n  due at 02:00  \nmore' }))).toBe('job nightly: run 5 failure: due at 02:00');
  });

  it('fits what JupyterLab shows', () => {
    const message = alertMessage(alert(5, { text: 'x'.repeat(300) }));
    expect(message).toHaveLength(MESSAGE_MAX);
    expect(message.startsWith('job nightly: run 5 failure: xxx')).toBe(true);
    expect(message.endsWith('…')).toBe(true);
  });
});

describe('alertAction', () => {
  it("opens a job run's output", () => {
    expect(alertAction(alert(5))).toEqual({ kind: 'run', job: 'nightly', run: 5, label: 'Open output' });
  });

  it('opens the link of an alert about something else, and nothing for a late run', () => {
    const url = 'http://127.0.0.1:8888/lab/tree/report.ipynb';
    expect(alertAction(alert(5, { labels: { table: 'raw.flights' }, url }))).toEqual({
      kind: 'url',
      url,
      label: 'Open link'
    });
    expect(alertAction(alert(5, { labels: { job: 'nightly', run: '5', event: 'late' } }))).toBeNull();
    expect(alertAction(alert(5, { labels: {}, url: 'javascript:alert(1)' }))).toBeNull();
  });
});

describe('nextDelay', () => {
  it('polls every few seconds and backs off, doubling, while the server is unreachable', () => {
    let delay = POLL_MS;
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      delay = nextDelay(delay, false);
      waits.push(delay);
    }
    expect(waits).toEqual([10_000, 20_000, 40_000, MAX_BACKOFF_MS, MAX_BACKOFF_MS, MAX_BACKOFF_MS]);
    expect(nextDelay(delay, true)).toBe(POLL_MS);
  });
});
