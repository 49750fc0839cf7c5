/**
 * Errors from the lakebook REST API, as the panel shows them: a message and a
 * hint saying what to do. Kept free of JupyterLab imports for the unit tests.
 */

export class LakeApiError extends Error {
  constructor(
    message: string,
    readonly hint: string = '',
    readonly status: number = 0,
    /** A 422's reasons, one per field (`{"loc", "msg"}`), as a model endpoint sends them. */
    readonly details: unknown = null
  ) {
    super(message);
    this.name = 'LakeApiError';
  }
}

/**
 * The error a failed response carries: the server's `{"error": {status, message,
 * hint}}` body when it has one, else a generic message naming the HTTP status.
 */
export function errorFromBody(status: number, body: unknown): LakeApiError {
  const error = (body as { error?: Record<string, unknown> } | null)?.error;
  if (error && typeof error.message === 'string') {
    const hint = typeof error.hint === 'string' ? error.hint : '';
    const code = typeof error.status === 'number' ? error.status : status;
    return new LakeApiError(error.message, hint, code, error.details ?? null);
  }
  return new LakeApiError(
    `The lakebook server answered with HTTP ${status}.`,
    'Check the Jupyter server log; is the lakebook server extension enabled ' +
      '(`jupyter server extension list`)?',
    status
  );
}
