/**
 * The Lake panel's data model: the catalog JSON served by the lakebook server
 * extension, the tree the panel renders from it, filtering, freshness labels and
 * the `%%lake` query text. Plain TypeScript with no JupyterLab imports, so the
 * unit tests exercise it without a browser.
 */

/** A column as the catalog API describes it. */
export interface IColumnInfo {
  name: string;
  type: string;
  description: string;
  nullable: boolean;
  pii: boolean;
}

/** A table as the catalog API describes it (`GET /lakebook/api/catalog`). */
export interface ITableInfo {
  /** Qualified name, `zone.table`. */
  name: string;
  zone: string;
  table: string;
  description: string;
  owner: string | null;
  row_count: number | null;
  bytes: number | null;
  last_event_time: string | null;
  last_updated: string | null;
  columns: IColumnInfo[];
  lineage: { upstream: string[]; downstream: string[] };
}

/** The whole catalog response. */
export interface ICatalog {
  workspace: string;
  generated_at: string;
  zones: { name: string; tables: ITableInfo[] }[];
}

/** `GET /lakebook/api/tables/{name}/preview` response. */
export interface IPreview {
  name: string;
  columns: { name: string; type: string }[];
  rows: unknown[][];
  limit: number;
  row_count: number;
}

/** A table in the rendered tree, with the columns that are shown under it. */
export interface ITableNode {
  info: ITableInfo;
  columns: IColumnInfo[];
  /** True when the filter matched only some of the columns, not the table itself. */
  matchedByColumn: boolean;
}

/** A zone in the rendered tree. */
export interface IZoneNode {
  name: string;
  tables: ITableNode[];
}

/** What the panel renders. */
export interface ILakeTree {
  workspace: string;
  generatedAt: string;
  zones: IZoneNode[];
}

/**
 * Build the panel tree from the catalog response, in the server's order.
 *
 * Tolerates partial table records (missing columns, lineage or names) so that
 * one odd entry cannot blank the whole panel.
 */
export function buildTree(catalog: ICatalog): ILakeTree {
  const zones = (catalog.zones ?? []).map(zone => ({
    name: zone.name,
    tables: (zone.tables ?? []).map(table => {
      const info = normalizeTable(table, zone.name);
      return { info, columns: info.columns, matchedByColumn: false };
    })
  }));
  return {
    workspace: catalog.workspace ?? '',
    generatedAt: catalog.generated_at ?? '',
    zones
  };
}

function normalizeTable(table: Partial<ITableInfo>, zone: string): ITableInfo {
  const tableZone = table.zone ?? zone;
  const shortName = table.table ?? (table.name ?? '').split('.').pop() ?? '';
  return {
    name: table.name ?? `${tableZone}.${shortName}`,
    zone: tableZone,
    table: shortName,
    description: table.description ?? '',
    owner: table.owner ?? null,
    row_count: table.row_count ?? null,
    bytes: table.bytes ?? null,
    last_event_time: table.last_event_time ?? null,
    last_updated: table.last_updated ?? null,
    columns: (table.columns ?? []).map(column => ({
      name: column.name,
      type: column.type ?? '',
      description: column.description ?? '',
      nullable: column.nullable ?? true,
      pii: column.pii ?? false
    })),
    lineage: {
      upstream: table.lineage?.upstream ?? [],
      downstream: table.lineage?.downstream ?? []
    }
  };
}

/**
 * Keep the tables and columns that match `query` (case-insensitive substring).
 *
 * A table matches on its qualified name, description or owner and then keeps all
 * its columns; otherwise it is kept with only the columns whose name, type or
 * description match. A zone whose name matches keeps all its tables. Zones left
 * without tables are dropped. An empty query returns the tree unchanged.
 */
export function filterTree(tree: ILakeTree, query: string): ILakeTree {
  const needle = query.trim().toLowerCase();
  if (!needle) {
    return tree;
  }
  const matches = (...texts: (string | null | undefined)[]): boolean =>
    texts.some(text => !!text && text.toLowerCase().includes(needle));

  const zones: IZoneNode[] = [];
  for (const zone of tree.zones) {
    if (matches(zone.name)) {
      zones.push(zone);
      continue;
    }
    const tables: ITableNode[] = [];
    for (const node of zone.tables) {
      const { info } = node;
      if (matches(info.name, info.description, info.owner)) {
        tables.push({ info, columns: info.columns, matchedByColumn: false });
        continue;
      }
      const columns = info.columns.filter(column =>
        matches(column.name, column.type, column.description)
      );
      if (columns.length > 0) {
        tables.push({ info, columns, matchedByColumn: true });
      }
    }
    if (tables.length > 0) {
      zones.push({ name: zone.name, tables });
    }
  }
  return { ...tree, zones };
}

/** Number of tables in a tree. */
export function countTables(tree: ILakeTree): number {
  return tree.zones.reduce((total, zone) => total + zone.tables.length, 0);
}

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * "just now", "3 min ago", "2 h ago", "5 days ago", "4 months ago", "2 years ago";
 * "never" for a missing timestamp and "unknown" for one that does not parse.
 * Timestamps slightly in the future (clock skew) read "just now".
 */
export function relativeTime(
  iso: string | null | undefined,
  now: Date = new Date()
): string {
  if (!iso) {
    return 'never';
  }
  const then = Date.parse(iso);
  if (Number.isNaN(then)) {
    return 'unknown';
  }
  const elapsed = now.getTime() - then;
  if (elapsed < MINUTE) {
    return 'just now';
  }
  if (elapsed < HOUR) {
    return `${Math.floor(elapsed / MINUTE)} min ago`;
  }
  if (elapsed < DAY) {
    return `${Math.floor(elapsed / HOUR)} h ago`;
  }
  const days = Math.floor(elapsed / DAY);
  if (days < 60) {
    return days === 1 ? '1 day ago' : `${days} days ago`;
  }
  if (days < 730) {
    return `${Math.floor(days / 30)} months ago`;
  }
  return `${Math.floor(days / 365)} years ago`;
}

/** The timestamp a table's freshness is judged by: its last write, else its newest event. */
export function freshnessTimestamp(table: ITableInfo): string | null {
  return table.last_updated ?? table.last_event_time ?? null;
}

/** "updated 3 min ago", or "never updated" for a table with no timestamps. */
export function freshnessLabel(table: ITableInfo, now: Date = new Date()): string {
  const timestamp = freshnessTimestamp(table);
  if (!timestamp) {
    return 'never updated';
  }
  return `updated ${relativeTime(timestamp, now)}`;
}

/** "1,234 rows", "1 row", or "" when the catalog has no count yet. */
export function rowCountLabel(rowCount: number | null): string {
  if (rowCount === null || rowCount === undefined) {
    return '';
  }
  const formatted = rowCount.toLocaleString('en-US');
  return rowCount === 1 ? '1 row' : `${formatted} rows`;
}

/** "512 B", "1.5 KB", "12 MB", or "" when unknown. */
export function bytesLabel(bytes: number | null): string {
  if (bytes === null || bytes === undefined) {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

const PLAIN_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** An SQL identifier, double-quoted only when it needs to be. */
export function sqlIdentifier(name: string): string {
  return PLAIN_IDENTIFIER.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** The source of the cell "Insert query" adds: a `%%lake` query over the table. */
export function lakeQueryText(
  table: Pick<ITableInfo, 'zone' | 'table'>,
  limit = 100
): string {
  const from = `${sqlIdentifier(table.zone)}.${sqlIdentifier(table.table)}`;
  return `%%lake\nSELECT * FROM ${from} LIMIT ${limit}`;
}

const LAKE_MAGIC = /^%%lake(\s|$)/;

/** Whether a cell's source is a `%%lake` cell (the magic on its first line). */
export function isLakeCell(source: string): boolean {
  return LAKE_MAGIC.test(source);
}
