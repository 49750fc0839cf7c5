/**
 * Reading a panel's data again on a timer while the panel is shown.
 */

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
