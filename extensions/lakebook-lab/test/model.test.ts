import {
  buildTree,
  bytesLabel,
  countTables,
  filterTree,
  freshnessLabel,
  ICatalog,
  isLakeCell,
  lakeQueryText,
  relativeTime,
  rowCountLabel,
  sqlIdentifier
} from '../src/model';
import { sampleCatalog } from './catalog.fixture';

const NOW = new Date('2024-05-01T12:00:00Z');

function ago(milliseconds: number): string {
  return new Date(NOW.getTime() - milliseconds).toISOString();
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('relativeTime', () => {
  it.each([
    [0, 'just now'],
    [59 * SECOND, 'just now'],
    [MINUTE, '1 min ago'],
    [3 * MINUTE + 20 * SECOND, '3 min ago'],
    [59 * MINUTE, '59 min ago'],
    [2 * HOUR, '2 h ago'],
    [23 * HOUR + 59 * MINUTE, '23 h ago'],
    [DAY, '1 day ago'],
    [5 * DAY + 3 * HOUR, '5 days ago'],
    [59 * DAY, '59 days ago'],
    [120 * DAY, '4 months ago'],
    [3 * 365 * DAY, '3 years ago']
  ])('%d ms ago reads "%s"', (elapsed, expected) => {
    expect(relativeTime(ago(elapsed), NOW)).toBe(expected);
  });

  it('reads "never" without a timestamp', () => {
    expect(relativeTime(null, NOW)).toBe('never');
    expect(relativeTime(undefined, NOW)).toBe('never');
    expect(relativeTime('', NOW)).toBe('never');
  });

  it('reads "unknown" for a timestamp that does not parse', () => {
    expect(relativeTime('yesterday-ish', NOW)).toBe('unknown');
  });

  it('reads "just now" for a timestamp slightly in the future (clock skew)', () => {
    expect(relativeTime(ago(-30 * SECOND), NOW)).toBe('just now');
  });

  it('understands the server offset form and microseconds', () => {
    expect(relativeTime('2024-05-01T11:57:00.123456+00:00', NOW)).toBe('2 min ago');
    expect(relativeTime('2024-05-01T13:57:00+02:00', NOW)).toBe('3 min ago');
  });
});

describe('freshnessLabel', () => {
  const tree = buildTree(sampleCatalog());
  const [raw, warehouse] = tree.zones;

  it('prefers the last write', () => {
    expect(freshnessLabel(raw.tables[0].info, NOW)).toBe('updated 3 min ago');
  });

  it('falls back to the newest event time', () => {
    expect(freshnessLabel(warehouse.tables[0].info, NOW)).toBe('updated 1 day ago');
  });

  it('says "never updated" without either timestamp', () => {
    expect(freshnessLabel(raw.tables[1].info, NOW)).toBe('never updated');
  });
});

describe('buildTree', () => {
  it('keeps zones and tables in the server order, empty zones included', () => {
    const tree = buildTree(sampleCatalog());
    expect(tree.workspace).toBe('/home/ada/flights');
    expect(tree.generatedAt).toBe('2024-05-01T12:00:00+00:00');
    expect(tree.zones.map(zone => zone.name)).toEqual(['raw', 'warehouse', 'features']);
    expect(tree.zones[0].tables.map(node => node.info.name)).toEqual([
      'raw.flights',
      'raw.weather'
    ]);
    expect(tree.zones[2].tables).toEqual([]);
    expect(countTables(tree)).toBe(3);
  });

  it('puts every column under its table', () => {
    const flights = buildTree(sampleCatalog()).zones[0].tables[0];
    expect(flights.columns.map(column => column.name)).toEqual(['carrier', 'passenger_email']);
    expect(flights.columns[1].pii).toBe(true);
    expect(flights.matchedByColumn).toBe(false);
  });

  it('fills in what a partial table record leaves out', () => {
    const catalog = {
      workspace: 'w',
      generated_at: '2024-05-01T12:00:00Z',
      zones: [{ name: 'raw', tables: [{ name: 'raw.events' }] }]
    } as unknown as ICatalog;
    const info = buildTree(catalog).zones[0].tables[0].info;
    expect(info).toEqual({
      name: 'raw.events',
      zone: 'raw',
      table: 'events',
      description: '',
      owner: null,
      row_count: null,
      bytes: null,
      last_event_time: null,
      last_updated: null,
      columns: [],
      lineage: { upstream: [], downstream: [] }
    });
  });

  it('accepts a catalog without zones', () => {
    const catalog = { workspace: 'w', generated_at: '' } as unknown as ICatalog;
    expect(buildTree(catalog).zones).toEqual([]);
  });
});

describe('filterTree', () => {
  const tree = buildTree(sampleCatalog());
  const names = (query: string) =>
    filterTree(tree, query).zones.flatMap(zone => zone.tables.map(node => node.info.name));

  it('returns the tree unchanged for an empty or blank query', () => {
    expect(filterTree(tree, '')).toBe(tree);
    expect(filterTree(tree, '   ')).toBe(tree);
  });

  it('matches table names case-insensitively, keeping all their columns', () => {
    const shown = filterTree(tree, 'WEATHER');
    expect(shown.zones.map(zone => zone.name)).toEqual(['raw']);
    expect(shown.zones[0].tables[0].info.name).toBe('raw.weather');
    expect(shown.zones[0].tables[0].columns.map(column => column.name)).toEqual(['temp']);
    expect(shown.zones[0].tables[0].matchedByColumn).toBe(false);
  });

  it('matches the qualified name, description and owner', () => {
    expect(names('raw.fl')).toEqual(['raw.flights']);
    expect(names('metar')).toEqual(['raw.weather']);
    expect(names('analytics')).toEqual(['warehouse.daily_delays']);
  });

  it('keeps only the matching columns when a column matches', () => {
    const shown = filterTree(tree, 'email');
    expect(shown.zones).toHaveLength(1);
    const [flights] = shown.zones[0].tables;
    expect(flights.info.name).toBe('raw.flights');
    expect(flights.columns.map(column => column.name)).toEqual(['passenger_email']);
    expect(flights.matchedByColumn).toBe(true);
    // The table record itself is untouched: all its columns are still there.
    expect(flights.info.columns).toHaveLength(2);
  });

  it('matches column descriptions and types', () => {
    expect(names('fahrenheit')).toEqual(['raw.weather']);
    expect(names('double')).toEqual(['raw.weather', 'warehouse.daily_delays']);
  });

  it('finds a column in every table that has it', () => {
    expect(names('carrier')).toEqual(['raw.flights', 'warehouse.daily_delays']);
  });

  it('keeps a whole zone whose name matches', () => {
    expect(names('warehouse')).toEqual(['warehouse.daily_delays']);
    const shown = filterTree(tree, 'features');
    expect(shown.zones.map(zone => zone.name)).toEqual(['features']);
    expect(countTables(shown)).toBe(0);
  });

  it('drops everything when nothing matches', () => {
    const shown = filterTree(tree, 'no-such-thing');
    expect(shown.zones).toEqual([]);
    expect(shown.workspace).toBe(tree.workspace);
  });
});

describe('lakeQueryText', () => {
  it('builds a %%lake cell over zone.table', () => {
    expect(lakeQueryText({ zone: 'raw', table: 'flights' })).toBe(
      '%%lake\nSELECT * FROM raw.flights LIMIT 100'
    );
  });

  it('takes another limit', () => {
    expect(lakeQueryText({ zone: 'warehouse', table: 'daily_delays' }, 10)).toBe(
      '%%lake\nSELECT * FROM warehouse.daily_delays LIMIT 10'
    );
  });

  it('quotes names that are not plain identifiers', () => {
    expect(lakeQueryText({ zone: 'raw', table: 'app-events' })).toBe(
      '%%lake\nSELECT * FROM raw."app-events" LIMIT 100'
    );
    expect(sqlIdentifier('odd"name')).toBe('"odd""name"');
    expect(sqlIdentifier('_ok1')).toBe('_ok1');
    expect(sqlIdentifier('1st')).toBe('"1st"');
  });
});

describe('isLakeCell', () => {
  it.each([
    ['%%lake\nSELECT 1', true],
    ['%%lake', true],
    ['%%lake --engine spark\nSELECT 1', true],
    ['%%lakes\nSELECT 1', false],
    ['%lake SELECT 1', false],
    ['# %%lake\nSELECT 1', false],
    ['\n%%lake\nSELECT 1', false],
    ['print("%%lake")', false],
    ['', false]
  ])('%j -> %s', (source, expected) => {
    expect(isLakeCell(source)).toBe(expected);
  });
});

describe('labels', () => {
  it('formats row counts', () => {
    expect(rowCountLabel(null)).toBe('');
    expect(rowCountLabel(0)).toBe('0 rows');
    expect(rowCountLabel(1)).toBe('1 row');
    expect(rowCountLabel(336776)).toBe('336,776 rows');
  });

  it('formats sizes', () => {
    expect(bytesLabel(null)).toBe('');
    expect(bytesLabel(512)).toBe('512 B');
    expect(bytesLabel(1536)).toBe('1.5 KB');
    expect(bytesLabel(12_582_912)).toBe('12 MB');
  });
});
