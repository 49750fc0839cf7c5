/**
 * The one place the frontend talks to the lakebook server extension.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ILabAlerts } from './alerts';
import { IDashboard, IDashboards, IPublishRequest, IShareLink } from './dashboards';
import { errorFromBody, LakeApiError } from './errors';
import { IEndpoints, IEndpointSchema, IPrediction } from './endpoints';
import {
  IJob,
  IJobs,
  INotebookParameters,
  IRun,
  IRunOutput,
  IRuns,
  IRunStarted,
  IScheduleRequest
} from './jobs';
import { ICatalog, IPreview } from './model';
import { IMonitorAlert, IMonitorAlerts, parseAlert, parseAlerts } from './monitoralerts';

const API_ROOT = 'lakebook/api';

/**
 * Call the lakebook REST API and return its JSON body.
 *
 * @throws LakeApiError carrying the server's message and hint.
 */
export async function requestAPI<T>(
  path: string,
  query: Record<string, string | number> = {},
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url =
    URLExt.join(settings.baseUrl, API_ROOT, path) +
    (Object.keys(query).length ? URLExt.objectToQueryString(query) : '');
  // 'no-cache' revalidates every time, like the default 'no-store', but without the
  // timestamp query parameter that 'no-store' appends (the API validates its query).
  const request: RequestInit = { cache: 'no-cache', ...init };
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, request, settings);
  } catch (error) {
    throw new LakeApiError(
      `Could not reach the Jupyter server: ${(error as Error).message}`,
      'Is JupyterLab still running?'
    );
  }
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    throw errorFromBody(response.status, body);
  }
  if (body === null) {
    throw new LakeApiError(
      `The lakebook server sent a response that is not JSON (${url}).`,
      'Is the lakebook server extension enabled (`jupyter server extension list`)?',
      response.status
    );
  }
  return body as T;
}

/** `GET /lakebook/api/catalog` */
export function fetchCatalog(): Promise<ICatalog> {
  return requestAPI<ICatalog>('catalog');
}

/** `GET /lakebook/api/tables/{name}/preview?limit=N` */
export function fetchPreview(name: string, limit = 100): Promise<IPreview> {
  return requestAPI<IPreview>(`tables/${encodeURIComponent(name)}/preview`, {
    limit
  });
}

/** `GET /lakebook/api/endpoints` */
export function fetchEndpoints(): Promise<IEndpoints> {
  return requestAPI<IEndpoints>('endpoints');
}

/** `GET /lakebook/api/endpoints/{name}/schema` */
export function fetchEndpointSchema(name: string): Promise<IEndpointSchema> {
  return requestAPI<IEndpointSchema>(`endpoints/${encodeURIComponent(name)}/schema`);
}

/**
 * `POST /lakebook/api/endpoints/{name}/predict`: the Jupyter server relays the
 * request with its serving token (the browser never holds one).
 */
export function postPrediction(name: string, body: Record<string, unknown>): Promise<IPrediction> {
  return requestAPI<IPrediction>(`endpoints/${encodeURIComponent(name)}/predict`, {}, {
    method: 'POST',
    body: JSON.stringify(body)
  });
}

const job = (name: string) => `jobs/${encodeURIComponent(name)}`;
const post = (body: unknown = {}): RequestInit => ({ method: 'POST', body: JSON.stringify(body) });

/** `GET /lakebook/api/jobs` */
export function fetchJobs(): Promise<IJobs> {
  return requestAPI<IJobs>('jobs');
}

/** `GET /lakebook/api/jobs/{name}/runs?limit=N`: newest first. */
export function fetchRuns(name: string, limit = 10): Promise<IRuns> {
  return requestAPI<IRuns>(`${job(name)}/runs`, { limit });
}

/** `POST /lakebook/api/jobs/{name}/runs`: run now (queued for the scheduler, or run by the server). */
export function startRun(name: string, parameters: Record<string, unknown> = {}): Promise<IRunStarted> {
  return requestAPI<IRunStarted>(`${job(name)}/runs`, {}, post({ parameters }));
}

/** `POST /lakebook/api/jobs/{name}/runs/{id}/cancel` */
export function cancelRun(name: string, runId: number): Promise<{ run: IRun }> {
  return requestAPI<{ run: IRun }>(`${job(name)}/runs/${runId}/cancel`, {}, post());
}

/** `POST /lakebook/api/jobs/{name}/enable` or `/disable` */
export function setJobEnabled(name: string, enabled: boolean): Promise<IJob> {
  return requestAPI<IJob>(`${job(name)}/${enabled ? 'enable' : 'disable'}`, {}, post());
}

/** `GET /lakebook/api/jobs/{name}/runs/{id}/output` */
export function fetchRunOutput(name: string, runId: number): Promise<IRunOutput> {
  return requestAPI<IRunOutput>(`${job(name)}/runs/${runId}/output`);
}

/** `GET /lakebook/api/jobs/notebook-parameters?path=P` */
export function fetchNotebookParameters(path: string): Promise<INotebookParameters> {
  return requestAPI<INotebookParameters>('jobs/notebook-parameters', { path });
}

/** `POST /lakebook/api/jobs`: write the job definition of a scheduled notebook. */
export function scheduleNotebook(request: IScheduleRequest): Promise<IJob> {
  return requestAPI<IJob>('jobs', {}, post(request));
}

/** `GET /lakebook/api/alerts?after=ID&limit=N`: the inbox's alerts above `after`, newest first. */
export function fetchAlerts(after: number, limit: number): Promise<ILabAlerts> {
  return requestAPI<ILabAlerts>('alerts', { after, limit });
}

/** `POST /lakebook/api/alerts/{id}/read` */
export function markAlertRead(id: number): Promise<{ marked: number; unread: number }> {
  return requestAPI<{ marked: number; unread: number }>(`alerts/${id}/read`, {}, post());
}

/** `GET /lakebook/api/monitor/alerts`: the monitor's alerts and how many are open. */
export async function fetchMonitorAlerts(): Promise<IMonitorAlerts> {
  return parseAlerts(await requestAPI<unknown>('monitor/alerts'));
}

/** `POST /lakebook/api/monitor/alerts/{id}/ack`: the alert, acknowledged by this Lab's user. */
export async function ackMonitorAlert(id: number): Promise<IMonitorAlert> {
  return parseAlert(await requestAPI<unknown>(`monitor/alerts/${id}/ack`, {}, post()));
}

const dashboard = (name: string) => `dashboards/${encodeURIComponent(name)}`;

/** `GET /lakebook/api/dashboards` */
export function fetchDashboards(): Promise<IDashboards> {
  return requestAPI<IDashboards>('dashboards');
}

/** `POST /lakebook/api/dashboards`: publish a notebook (its path in the Lab). */
export function publishDashboard(request: IPublishRequest): Promise<IDashboard> {
  return requestAPI<IDashboard>('dashboards', {}, post(request));
}

/** `DELETE /lakebook/api/dashboards/{name}` */
export function unpublishDashboard(name: string): Promise<unknown> {
  return requestAPI<unknown>(dashboard(name), {}, { method: 'DELETE' });
}

/** `POST /lakebook/api/dashboards/{name}/snapshot`: answers once the snapshot is stored. */
export function snapshotDashboard(name: string): Promise<IDashboard> {
  return requestAPI<IDashboard>(`${dashboard(name)}/snapshot`, {}, post());
}

/** `POST /lakebook/api/dashboards/{name}/share`: a link to hand on, valid for `expires`. */
export function shareDashboard(name: string, expires: string): Promise<IShareLink> {
  return requestAPI<IShareLink>(`${dashboard(name)}/share`, {}, post({ expires }));
}

/** `POST /lakebook/api/dashboards/{name}/open`: a short-lived link for this Lab user. */
export function openLink(name: string): Promise<IShareLink> {
  return requestAPI<IShareLink>(`${dashboard(name)}/open`, {}, post());
}
