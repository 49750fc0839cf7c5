import {
  dashboardCells,
  DEFAULT_EXPIRY,
  EXPIRY_CHOICES,
  IDashboard,
  linkLabel,
  publishRequest,
  serverLine,
  suggestedDashboardName
} from '../src/dashboards';

const NOW = new Date('2024-03-05T12:00:00Z');

const DELAYS: IDashboard = {
  name: 'delays',
  notebook: 'notebooks/delays.ipynb',
  url: 'http://127.0.0.1:8866/d/delays',
  published_at: '2024-03-01T08:00:00Z',
  published_by: 'lab:ada',
  pool_size: 1,
  last_snapshot: '2024-03-05T09:00:00Z',
  snapshot_url: 'http://127.0.0.1:8866/snapshots/delays/latest'
};

describe('dashboardCells', () => {
  it('shows how long ago the last snapshot was, with its UTC time as the title', () => {
    expect(dashboardCells(DELAYS, NOW)).toEqual({
      notebook: 'notebooks/delays.ipynb',
      snapshot: 'snapshot 3 h ago',
      snapshotTitle: 'last snapshot 2024-03-05 09:00:00 UTC'
    });
  });

  it('says when there is no snapshot yet', () => {
    const cells = dashboardCells({ ...DELAYS, last_snapshot: null, snapshot_url: null }, NOW);
    expect(cells.snapshot).toBe('no snapshot yet');
  });
});

describe('serverLine', () => {
  it('names the running server', () => {
    expect(serverLine({ url: 'http://127.0.0.1:8866', running: true })).toEqual({
      text: 'Dashboard server running at http://127.0.0.1:8866',
      running: true
    });
  });

  it('says what to do when no server answers, and nothing before the first load', () => {
    const line = serverLine({ url: 'http://127.0.0.1:8866', running: false });
    expect(line.running).toBe(false);
    expect(line.text).toMatch(/^No dashboard server answers at http:\/\/127\.0\.0\.1:8866: .*lakebook up/);
    expect(serverLine(null)).toEqual({ text: '', running: false });
  });
});

describe('share links', () => {
  it('offers a few lifetimes, 7 days by default', () => {
    expect(EXPIRY_CHOICES.map(choice => choice.value)).toEqual(['1h', '8h', '1d', '7d', '30d']);
    expect(EXPIRY_CHOICES.map(choice => choice.value)).toContain(DEFAULT_EXPIRY);
    expect(DEFAULT_EXPIRY).toBe('7d');
  });

  it("reads a link's expiry in UTC", () => {
    const link = { id: 'ab12', dashboard: 'delays', expires_at: '2024-03-12T12:00:00Z', url: 'http://x/d/delays?share=t' };
    expect(linkLabel(link)).toBe('link valid until 2024-03-12 12:00:00 UTC');
  });
});

describe('publishing', () => {
  it('suggests the name the server would choose', () => {
    expect(suggestedDashboardName('notebooks/10_Delay Dashboard.ipynb')).toBe('delay_dashboard');
    expect(suggestedDashboardName('a/delays.ipynb')).toBe('delays');
    expect(suggestedDashboardName('2024.ipynb')).toBe('dashboard');
  });

  it("sends a name only when it is not the server's default", () => {
    expect(publishRequest('notebooks/delays.ipynb', 'delays')).toEqual({ notebook: 'notebooks/delays.ipynb' });
    expect(publishRequest('notebooks/delays.ipynb', '  ')).toEqual({ notebook: 'notebooks/delays.ipynb' });
    expect(publishRequest('notebooks/delays.ipynb', ' airport ')).toEqual({
      notebook: 'notebooks/delays.ipynb',
      name: 'airport'
    });
  });
});
