import { LakeApiError } from '../src/errors';
import {
  alertButtons,
  badgeCaption,
  badgeText,
  emptyText,
  IMonitorAlert,
  impactEntries,
  impactText,
  isOpen,
  labelTexts,
  markTexts,
  parseAlert,
  parseAlerts,
  sinceText,
  sinceTitle,
  sortAlerts,
  visibleAlerts
} from '../src/monitoralerts';

const NOW = new Date('2024-03-05T12:00:00Z');

/** An alert as the API sends it: a firing freshness check on raw.flights, started 10 min ago. */
function wire(id: number, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    fingerprint: `fp${id}`,
    alertname: 'flights_fresh',
    title: 'freshness(raw.flights) is 3 h (fail above 2 h)',
    text: 'The last event arrived at 09:00 UTC.',
    severity: 'critical',
    status: 'firing',
    labels: { alertname: 'flights_fresh', check: 'freshness(raw.flights)', kind: 'freshness',
      severity: 'critical', table: 'raw.flights' },
    starts_at: '2024-03-05T11:50:00Z',
    ends_at: null,
    acked: false,
    acked_by: null,
    acked_at: null,
    silenced: false,
    impact: ['mart.delays', 'feature view flight_stats', 'dashboard ops'],
    ...fields
  };
}

const alert = (id: number, fields: Record<string, unknown> = {}): IMonitorAlert => parseAlert(wire(id, fields));

describe('parseAlerts', () => {
  it('reads the answer as the API sends it', () => {
    const answer = parseAlerts({ alerts: [wire(3)], open: 1 });
    expect(answer.open).toBe(1);
    expect(answer.alerts).toEqual([{ ...wire(3) }]);
  });

  it("reads the alert manager's answer: impact by kind, `acked`, times and counts of its own", () => {
    const answer = parseAlerts({
      alerts: [
        wire(4, {
          url: null, last_seen: '2024-03-05T11:59:00Z', acked: true, acked_by: 'ana', acked_at: '2024-03-05T11:55:00Z',
          impact: { target: 'raw.flights', tables: ['mart.delays'], feature_views: ['flight_stats'],
            feature_services: [], jobs: ['nightly'], dashboards: ['ops'], endpoints: ['delay'], notes: ['no Feast'] }
        }),
        wire(5, { impact: {} })
      ],
      open: 2,
      unacked: 1
    });
    expect(answer.alerts[0].impact).toEqual(['mart.delays', 'feature view flight_stats', 'job nightly',
      'dashboard ops', 'endpoint delay']);
    expect(answer.alerts[0].acked).toBe(true);
    expect(answer.alerts[1].impact).toEqual([]);
    expect('last_seen' in answer.alerts[0]).toBe(false);
    expect(answer.open).toBe(1); // the badge counts the unacked, unsilenced firing ones, as the rows show
  });

  it('ignores fields it does not know and defaults the ones an older server leaves out', () => {
    const parsed = parseAlert({ id: 7, alertname: 'rejects', labels: { source: 'weather', n: 3 }, route: 'team-a' });
    expect(parsed).toEqual({
      id: 7, fingerprint: '', alertname: 'rejects', title: 'rejects', text: '', severity: 'warning',
      status: 'firing', labels: { source: 'weather', n: '3' }, starts_at: '', ends_at: null,
      acked: false, acked_by: null, acked_at: null, silenced: false, impact: []
    });
    expect('route' in parsed).toBe(false);
    expect(parseAlert({ id: 8, labels: { alertname: 'late' } }).alertname).toBe('late');
  });

  it('counts the open alerts when the answer has no count', () => {
    const answer = parseAlerts({ alerts: [wire(1), wire(2, { acked_by: 'ana' }), wire(3, { status: 'resolved' })] });
    expect(answer.open).toBe(1);
  });

  it('refuses a body that is not a list of alerts, or an alert without an id, with a hint', () => {
    for (const body of [null, 'nope', { alerts: 'x' }, { error: { message: 'm' } }]) {
      expect(() => parseAlerts(body)).toThrow(LakeApiError);
    }
    let caught: unknown = null;
    try {
      parseAlerts({ alerts: [{ title: 'no id' }] });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(LakeApiError);
    expect((caught as LakeApiError).message).toBe('The lakebook server sent an alert without an id the Alerts panel cannot read.');
    expect((caught as LakeApiError).hint).toMatch(/Restart JupyterLab/);
  });
});

describe('isOpen', () => {
  it('is firing and neither acked nor silenced', () => {
    expect(isOpen(alert(1))).toBe(true);
    expect(isOpen(alert(1, { acked: true, acked_by: 'ana', acked_at: '2024-03-05T11:55:00Z' }))).toBe(false);
    expect(isOpen(alert(1, { acked_at: '2024-03-05T11:55:00Z' }))).toBe(false);
    expect(isOpen(alert(1, { acked: true }))).toBe(false);
    expect(isOpen(alert(1, { silenced: true }))).toBe(false);
    expect(isOpen(alert(1, { status: 'resolved', ends_at: '2024-03-05T11:58:00Z' }))).toBe(false);
  });
});

describe('sortAlerts and visibleAlerts', () => {
  const alerts = [
    alert(1, { status: 'resolved', ends_at: '2024-03-05T11:00:00Z' }),
    alert(2, { severity: 'warning', starts_at: '2024-03-05T11:59:00Z' }),
    alert(3, { acked_by: 'ana' }),
    alert(4, { severity: 'critical', starts_at: '2024-03-05T10:00:00Z' }),
    alert(5, { severity: 'critical', starts_at: '2024-03-05T11:00:00Z' }),
    alert(6, { severity: 'info', silenced: true })
  ];

  it('puts the open first (most severe, then newest), then the acked or silenced, then the resolved', () => {
    expect(sortAlerts(alerts).map(a => a.id)).toEqual([5, 4, 2, 3, 6, 1]);
  });

  it('does not reorder its argument', () => {
    sortAlerts(alerts);
    expect(alerts.map(a => a.id)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('breaks ties by the newest id', () => {
    expect(sortAlerts([alert(8), alert(9)]).map(a => a.id)).toEqual([9, 8]);
  });

  it('shows only the open ones under "open"', () => {
    expect(visibleAlerts(alerts, 'open').map(a => a.id)).toEqual([5, 4, 2]);
    expect(visibleAlerts(alerts, 'all')).toHaveLength(6);
  });
});

describe('the badge', () => {
  it('counts the open alerts, has nothing to say when none is open, and stays short', () => {
    expect(badgeText(0)).toBe('');
    expect(badgeText(1)).toBe('1');
    expect(badgeText(99)).toBe('99');
    expect(badgeText(250)).toBe('99+');
  });

  it('says it in the tooltip', () => {
    expect(badgeCaption(null)).toBe('Monitor alerts');
    expect(badgeCaption(0)).toBe('Monitor alerts: none open');
    expect(badgeCaption(3)).toBe('Monitor alerts: 3 open');
  });
});

describe('a row', () => {
  it('says since when it fires, or when it resolved, with the full times in the tooltip', () => {
    expect(sinceText(alert(1), NOW)).toBe('started 10 min ago');
    expect(sinceText(alert(1, { starts_at: '2024-03-05T11:59:50Z' }), NOW)).toBe('started just now');
    const resolved = alert(1, { status: 'resolved', starts_at: '2024-03-05T08:00:00Z', ends_at: '2024-03-05T09:00:00Z' });
    expect(sinceText(resolved, NOW)).toBe('resolved 3 h ago');
    expect(sinceTitle(resolved)).toBe('started 2024-03-05 08:00:00 UTC, resolved 2024-03-05 09:00:00 UTC');
    expect(sinceTitle(alert(1))).toBe('started 2024-03-05 11:50:00 UTC');
  });

  it('shows the labels but the name and severity, check and kind first', () => {
    const labels = { ...(wire(1).labels as Record<string, string>), job: 'nightly' };
    expect(labelTexts(alert(1, { labels }))).toEqual([
      'check=freshness(raw.flights)', 'kind=freshness', 'job=nightly', 'table=raw.flights'
    ]);
  });

  it('reads an impact given as a list or by kind, and nothing else', () => {
    expect(impactEntries(['a', 'b'])).toEqual(['a', 'b']);
    expect(impactEntries({ jobs: ['x'], tables: ['t'], unknown: ['u'] })).toEqual(['t', 'job x']);
    expect(impactEntries(null)).toEqual([]);
    expect(impactEntries('mart.delays')).toEqual([]);
  });

  it('lists what it affects downstream, and nothing when nothing depends on it', () => {
    expect(impactText(alert(1))).toBe('affects: mart.delays, feature view flight_stats, dashboard ops');
    expect(impactText(alert(1, { impact: [] }))).toBe('');
  });

  it('marks who acknowledged it and when, a silence and a resolution', () => {
    expect(markTexts(alert(1), NOW)).toEqual([]);
    expect(markTexts(alert(1, { acked_by: 'ana', acked_at: '2024-03-05T11:30:00Z', silenced: true }), NOW)).toEqual([
      { mark: 'acked', text: 'acked by ana 30 min ago' },
      { mark: 'silenced', text: 'silenced' }
    ]);
    expect(markTexts(alert(1, { status: 'resolved', acked_at: '2024-03-05T11:59:59Z' }), NOW)).toEqual([
      { mark: 'resolved', text: 'resolved' },
      { mark: 'acked', text: 'acked just now' }
    ]);
    expect(markTexts(alert(1, { acked: true }), NOW)).toEqual([{ mark: 'acked', text: 'acked' }]);
  });

  it('has "Ack" while it fires unacknowledged, silenced or not', () => {
    expect(alertButtons(alert(1))).toEqual(['ack']);
    expect(alertButtons(alert(1, { silenced: true }))).toEqual(['ack']);
    expect(alertButtons(alert(1, { acked_by: 'ana' }))).toEqual([]);
    expect(alertButtons(alert(1, { status: 'resolved' }))).toEqual([]);
  });
});

describe('emptyText', () => {
  it('points to "all" when alerts are kept but none is open, else to the checks', () => {
    const kept = parseAlerts({ alerts: [wire(1, { acked_by: 'ana' }), wire(2, { status: 'resolved' })] });
    expect(emptyText(kept, 'open')).toBe('No open alert (2 acked, silenced or resolved: choose "all" to see them).');
    expect(emptyText({ alerts: [], open: 0 }, 'open')).toMatch(/^No alert\. The checks in monitors\/\*\.yaml raise them/);
    expect(emptyText({ alerts: [], open: 0 }, 'all')).toBe(emptyText({ alerts: [], open: 0 }, 'open'));
  });
});
