import { nextDelay, MAX_BACKOFF_MS, POLL_MS } from '../src/alerts';
import { BackoffPoller } from '../src/polling';

// The poller schedules with window's timers; in Node they are the global ones (faked here).
(globalThis as { window?: unknown }).window = globalThis;

/** Let the poll's promise settle and the poller schedule its next tick. */
const settle = () => Promise.resolve().then(() => undefined).then(() => undefined);

/** Let `ms` go by a second at a time, each timer's poll settling before the next second. */
async function runFor(ms: number): Promise<void> {
  for (let passed = 0; passed < ms; passed += 1000) {
    jest.advanceTimersByTime(1000);
    await settle();
  }
}

describe('BackoffPoller', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('polls at once, then every POLL_MS while the server answers', async () => {
    let calls = 0;
    const poller = new BackoffPoller(async () => (++calls, true), nextDelay);
    poller.start();
    await settle();
    expect(calls).toBe(1);
    jest.advanceTimersByTime(POLL_MS - 1);
    await settle();
    expect(calls).toBe(1);
    jest.advanceTimersByTime(1);
    await settle();
    expect(calls).toBe(2);
    poller.stop();
  });

  it('waits twice as long after each failure (a throw counts as one), up to the cap, and back to POLL_MS', async () => {
    const times: number[] = [];
    let ok = false;
    const poller = new BackoffPoller(async () => {
      times.push(Date.now());
      if (times.length === 2) {
        throw new Error('unreachable');
      }
      return ok;
    }, nextDelay);
    poller.start();
    await settle();
    await runFor(4 * MAX_BACKOFF_MS);
    const pauses = times.slice(1).map((t, i) => t - times[i]);
    expect(pauses.slice(0, 4)).toEqual([2 * POLL_MS, 4 * POLL_MS, 8 * POLL_MS, MAX_BACKOFF_MS]);
    ok = true;
    await runFor(MAX_BACKOFF_MS);
    const before = times.length;
    await runFor(POLL_MS);
    expect(times.length).toBe(before + 1);
    poller.stop();
  });

  it('schedules nothing after stop(), even when a poll was under way', async () => {
    let calls = 0;
    let answer: (ok: boolean) => void = () => undefined;
    const poller = new BackoffPoller(() => (++calls, new Promise<boolean>(resolve => (answer = resolve))), nextDelay);
    poller.start();
    poller.stop();
    answer(true);
    await settle();
    jest.advanceTimersByTime(10 * MAX_BACKOFF_MS);
    await settle();
    expect(calls).toBe(1);
  });

  it('runs one loop when started again', async () => {
    let calls = 0;
    const poller = new BackoffPoller(async () => (++calls, true), nextDelay);
    poller.start();
    poller.start();
    await settle();
    expect(calls).toBe(2);
    jest.advanceTimersByTime(POLL_MS);
    await settle();
    expect(calls).toBe(3);
    poller.stop();
  });
});
