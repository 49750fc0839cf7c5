import {
  ageLabel,
  detailLines,
  endpointCells,
  exampleText,
  IEndpoint,
  inputType,
  IRequestField,
  modelName,
  msLabel,
  predictionLines,
  requestBody
} from '../src/endpoints';
import { errorFromBody } from '../src/errors';

const RUNNING: IEndpoint = {
  name: 'delay',
  model: 'models:/flight_delay@champion',
  uri: 'models:/flight_delay/3',
  version: '3',
  status: 'RUNNING',
  url: 'http://127.0.0.1:8000/delay',
  problem: null,
  declared: true,
  requests: 1234,
  errors: 2,
  rejected: 5,
  p50_ms: 12.4,
  p99_ms: 48.61
};

const FIELDS: IRequestField[] = [
  { name: 'origin', type: 'string', format: null, required: true, example: 'JFK' },
  { name: 'tailnum', type: 'string', format: null, required: true, example: null },
  { name: 'distance', type: 'number', format: null, required: true, example: 1069 },
  { name: 'sched_weekday', type: 'integer', format: null, required: true, example: 2 },
  { name: 'dest', type: 'string', format: null, required: false, example: null }
];

describe('an endpoint row', () => {
  it('shows status, model name and version, requests, p50/p99 and errors', () => {
    expect(endpointCells(RUNNING)).toEqual({
      status: 'running',
      statusKind: 'ok',
      model: 'flight_delay v3',
      requests: '1,234 requests',
      latency: 'p50 12 ms · p99 49 ms',
      errors: '2 errors (5 rejected)'
    });
  });

  it('shows dashes before any figure and when the service is not running', () => {
    const stopped: IEndpoint = {
      ...RUNNING,
      uri: null,
      version: null,
      status: 'not running',
      requests: null,
      errors: null,
      rejected: null,
      p50_ms: null,
      p99_ms: null
    };
    expect(endpointCells(stopped)).toEqual({
      status: 'not running',
      statusKind: 'down',
      model: 'flight_delay (no version)',
      requests: '– requests',
      latency: 'p50 – · p99 –',
      errors: '– errors'
    });
  });

  it.each([
    ['RUNNING', 'ok'],
    ['DEPLOYING', 'pending'],
    ['NOT DEPLOYED', 'pending'],
    ['DEPLOY_FAILED', 'down'],
    ['UNHEALTHY', 'down']
  ])('status %s is %s', (status, kind) => {
    expect(endpointCells({ ...RUNNING, status }).statusKind).toBe(kind);
  });

  it('names the model of a URI, whatever its form', () => {
    expect(modelName('models:/flight_delay@champion')).toBe('flight_delay');
    expect(modelName('models:/flight_delay/7')).toBe('flight_delay');
    expect(modelName('runs:/abc/model')).toBe('runs:/abc/model');
  });

  it.each([
    [0.4213, '0.42 ms'],
    [1.55, '1.6 ms'],
    [12.4, '12 ms'],
    [1523.7, '1524 ms'],
    [null, '–'],
    [Number.NaN, '–']
  ])('%p ms reads "%s"', (ms, text) => {
    expect(msLabel(ms)).toBe(text);
  });
});

describe('the try-it form', () => {
  it('starts each field with its example, or empty', () => {
    expect(FIELDS.map(exampleText)).toEqual(['JFK', '', '1069', '2', '']);
    expect(exampleText({ ...FIELDS[0], example: true })).toBe('true');
  });

  it('gives numbers a numeric input', () => {
    expect(FIELDS.map(inputType)).toEqual(['text', 'text', 'number', 'number', 'text']);
  });

  it('sends typed values and leaves empty optional fields out', () => {
    const texts = { origin: ' JFK ', tailnum: 'N625JB', distance: '1069.5', sched_weekday: '2', dest: '' };
    expect(requestBody(FIELDS, texts)).toEqual({
      origin: 'JFK',
      tailnum: 'N625JB',
      distance: 1069.5,
      sched_weekday: 2
    });
  });

  it('sends a mistake as it is, for the endpoint to name it', () => {
    const body = requestBody(FIELDS, { origin: 'JFK', distance: 'far', sched_weekday: '2.5' });
    expect(body).toEqual({ origin: 'JFK', tailnum: null, distance: 'far', sched_weekday: 2.5 });
  });
});

describe('the answer', () => {
  it('shows p_late, the model version, feature ages and missing features', () => {
    const lines = predictionLines({
      p_late: 0.23456,
      model: 'flight_delay',
      version: '3',
      request_id: 'abc',
      feature_age_s: { origin_delays: 42.2, plane_stats: null, carrier_daily: 7300 },
      missing_features: ['plane_stats:plane_seats']
    });
    expect(lines).toEqual([
      'p_late 0.235',
      'model flight_delay v3',
      'feature ages: origin_delays 42 s, plane_stats none, carrier_daily 2 h',
      'missing features: plane_stats:plane_seats'
    ]);
  });

  it.each([
    [5, '5 s'],
    [150, '3 min'],
    [7200, '2 h'],
    [86400, '1 day'],
    [3 * 86400, '3 days']
  ])('%d s reads "%s"', (seconds, text) => {
    expect(ageLabel(seconds)).toBe(text);
  });

  it("shows a 422's reasons per field", () => {
    const error = errorFromBody(422, {
      error: {
        status: 422,
        message: "the request does not match the model's inputs",
        hint: 'see the docs',
        details: [
          { loc: [0, 'distance'], msg: 'must be float' },
          { loc: [0, 'origin'], msg: 'required' },
          { loc: [], msg: 'send one object' }
        ]
      }
    });
    expect(error.status).toBe(422);
    expect(detailLines(error.details)).toEqual([
      'distance: must be float',
      'origin: required',
      'request: send one object'
    ]);
    expect(detailLines(errorFromBody(503, { error: { message: 'down' } }).details)).toEqual([]);
  });
});
