import { errorFromBody, LakeApiError } from '../src/errors';

describe('errorFromBody', () => {
  it('carries the server message, hint and status', () => {
    const error = errorFromBody(404, {
      error: {
        status: 404,
        message: 'No table raw.nope in the catalog.',
        hint: 'Run `lakebook catalog list` to see the tables.'
      }
    });
    expect(error).toBeInstanceOf(LakeApiError);
    expect(error.message).toBe('No table raw.nope in the catalog.');
    expect(error.hint).toBe('Run `lakebook catalog list` to see the tables.');
    expect(error.status).toBe(404);
  });

  it('accepts an error without a hint', () => {
    const error = errorFromBody(500, { error: { status: 500, message: 'boom' } });
    expect(error.message).toBe('boom');
    expect(error.hint).toBe('');
  });

  it('names the HTTP status when the body is not a lakebook error', () => {
    for (const body of [null, 'Not Found', { detail: 'x' }]) {
      const error = errorFromBody(404, body);
      expect(error.message).toBe('The lakebook server answered with HTTP 404.');
      expect(error.hint).toMatch(/server extension/);
      expect(error.status).toBe(404);
    }
  });
});
