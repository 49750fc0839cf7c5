/**
 * What the Endpoints panel shows, as plain data: the API's shapes, a row's cells,
 * the "try it" form's fields and the answer's lines. Kept free of JupyterLab and the
 * DOM so the unit tests run in Node; endpointspanel.ts only turns this into elements.
 */

/** One endpoint as `GET /lakebook/api/endpoints` lists it. */
export interface IEndpoint {
  name: string;
  model: string;
  uri: string | null;
  version: string | null;
  status: string;
  url: string;
  problem: string | null;
  declared: boolean;
  requests: number | null;
  errors: number | null;
  rejected: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
}

/** `GET /lakebook/api/endpoints`: the serving service's status, or why it has none. */
export interface IEndpoints {
  running: boolean;
  endpoints: IEndpoint[];
  message?: string;
  hint?: string;
}

/** One request field of `GET /lakebook/api/endpoints/{name}/schema`. */
export interface IRequestField {
  name: string;
  type: string;
  format: string | null;
  required: boolean;
  example: unknown;
}

export interface IEndpointSchema {
  name: string;
  model: string;
  uri: string | null;
  version: string | null;
  fields: IRequestField[];
}

/** An endpoint's answer to one request object. */
export interface IPrediction {
  p_late: number;
  model: string;
  version: string;
  request_id: string;
  feature_age_s: Record<string, number | null>;
  missing_features: string[];
}

/** The cells of an endpoint's row, as text. */
export interface IEndpointCells {
  status: string;
  statusKind: 'ok' | 'pending' | 'down';
  model: string;
  requests: string;
  latency: string;
  errors: string;
}

const OK_STATUSES = new Set(['RUNNING']);
const PENDING_STATUSES = new Set(['DEPLOYING', 'UPDATING', 'NOT DEPLOYED']);

/** "models:/flight_delay@champion" -> "flight_delay"; anything else as it is. */
export function modelName(uri: string): string {
  const match = /^models:\/([^/@]+)/.exec(uri);
  return match ? match[1] : uri;
}

/** Milliseconds as "12 ms", "1.5 ms", "0.42 ms"; "–" when there is no figure yet. */
export function msLabel(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) {
    return '–';
  }
  const digits = ms >= 10 ? 0 : ms >= 1 ? 1 : 2;
  return `${ms.toFixed(digits)} ms`;
}

function countLabel(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : n.toLocaleString('en-US');
}

export function endpointCells(endpoint: IEndpoint): IEndpointCells {
  const kind = OK_STATUSES.has(endpoint.status)
    ? 'ok'
    : PENDING_STATUSES.has(endpoint.status)
      ? 'pending'
      : 'down';
  const rejected = endpoint.rejected ? ` (${countLabel(endpoint.rejected)} rejected)` : '';
  return {
    status: endpoint.status.toLowerCase(),
    statusKind: kind,
    model: `${modelName(endpoint.model)} ${endpoint.version ? `v${endpoint.version}` : '(no version)'}`,
    requests: `${countLabel(endpoint.requests)} requests`,
    latency: `p50 ${msLabel(endpoint.p50_ms)} · p99 ${msLabel(endpoint.p99_ms)}`,
    errors: `${countLabel(endpoint.errors)} errors${rejected}`
  };
}

/** The text a field's input starts with: its example, or nothing. */
export function exampleText(field: IRequestField): string {
  if (field.example === null || field.example === undefined) {
    return '';
  }
  return typeof field.example === 'string' ? field.example : JSON.stringify(field.example);
}

/** The input type that suits a field (numbers get a numeric keyboard and stepper). */
export function inputType(field: IRequestField): 'number' | 'text' {
  return field.type === 'number' || field.type === 'integer' ? 'number' : 'text';
}

/**
 * The request object the form's texts make: numbers and booleans converted by the
 * field's type, empty optional fields left out. A text that is not of its field's
 * type is sent as it is: the endpoint names the problem (422), so the form never
 * hides a mistake behind its own rules.
 */
export function requestBody(
  fields: IRequestField[],
  texts: Record<string, string>
): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const field of fields) {
    const text = (texts[field.name] ?? '').trim();
    if (text === '' && !field.required) {
      continue;
    }
    body[field.name] = typedValue(field, text);
  }
  return body;
}

function typedValue(field: IRequestField, text: string): unknown {
  if (text === '') {
    return null;
  }
  if (field.type === 'number' || field.type === 'integer') {
    const value = Number(text);
    return Number.isFinite(value) ? value : text;
  }
  if (field.type === 'boolean') {
    return text === 'true' ? true : text === 'false' ? false : text;
  }
  return text;
}

/** The answer's lines: probability, version, each view's feature age, missing features. */
export function predictionLines(answer: IPrediction): string[] {
  const ages = Object.entries(answer.feature_age_s ?? {}).map(
    ([view, age]) => `${view} ${age === null ? 'none' : ageLabel(age)}`
  );
  const missing = answer.missing_features ?? [];
  return [
    `p_late ${answer.p_late.toFixed(3)}`,
    `model ${answer.model} v${answer.version}`,
    `feature ages: ${ages.join(', ') || 'none'}`,
    `missing features: ${missing.length ? missing.join(', ') : 'none'}`
  ];
}

/** Seconds as "42 s", "3 min", "5 h", "2 days". */
export function ageLabel(seconds: number): string {
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.round(seconds / 60)} min`;
  }
  if (seconds < 86400) {
    return `${Math.round(seconds / 3600)} h`;
  }
  const days = Math.round(seconds / 86400);
  return `${days} ${days === 1 ? 'day' : 'days'}`;
}

/** The per-field reasons of a 422 (`error.details`), as "field: reason" lines. */
export function detailLines(details: unknown): string[] {
  if (!Array.isArray(details)) {
    return [];
  }
  return details.map(detail => {
    const { loc, msg } = detail as { loc?: unknown[]; msg?: string };
    const where = (loc ?? []).filter(part => typeof part === 'string').join('.');
    return `${where || 'request'}: ${msg ?? 'invalid'}`;
  });
}
