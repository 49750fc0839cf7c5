/**
 * Reading a panel's data again on a timer: while the panel is shown (`Poller` with
 * `pollWhileShown`), or all the time, less often while the server does not answer
 * (`BackoffPoller`).
 */
import { IMessageHandler, Message, MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

/** Calls `refresh` now and every `intervalMs` from `start()` until `stop()`. */
export class Poller {
  constructor(
    private readonly refresh: () => Promise<void>,
    private readonly intervalMs: number
  ) {}

  start(): void {
    this.stop();
    void this.refresh();
    this._timer = window.setInterval(() => void this.refresh(), this.intervalMs);
  }

  stop(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _timer: number | null = null;
}

/**
 * Run `poller` while `widget` is shown: started when it is shown (a sidebar panel when
 * its tab is selected), stopped when it is hidden or disposed, so a closed panel sends
 * no requests. Returns the poller.
 */
export function pollWhileShown<T extends Pick<Poller, 'start' | 'stop'>>(widget: Widget, poller: T): T {
  // A message hook rather than onAfterShow/onAfterHide overrides: the panel keeps its
  // own handlers, and the hook goes with the widget (Widget.dispose clears its hooks).
  MessageLoop.installMessageHook(widget, (_: IMessageHandler, msg: Message) => {
    if (msg.type === 'after-show') {
      poller.start();
    } else if (msg.type === 'after-hide') {
      poller.stop();
    }
    return true;
  });
  widget.disposed.connect(() => poller.stop());
  return poller;
}

/**
 * Calls `poll` from `start()` until `stop()`, each time after the pause `nextDelay` gives
 * (from the previous pause and whether the poll succeeded), so it asks less often while
 * the server is unreachable. `poll` reports success by resolving to true.
 */
export class BackoffPoller {
  constructor(
    private readonly poll: () => Promise<boolean>,
    private readonly nextDelay: (previousMs: number, ok: boolean) => number
  ) {}

  start(): void {
    this.stop();
    void this._tick(this._generation);
  }

  stop(): void {
    this._generation++; // a poll still under way schedules nothing after it
    window.clearTimeout(this._timer);
  }

  private async _tick(generation: number): Promise<void> {
    const ok = await this.poll().catch(() => false);
    if (generation === this._generation) {
      this._delay = this.nextDelay(this._delay, ok);
      this._timer = window.setTimeout(() => void this._tick(generation), this._delay);
    }
  }

  private _generation = 0;
  private _delay = 0;
  private _timer = 0;
}
