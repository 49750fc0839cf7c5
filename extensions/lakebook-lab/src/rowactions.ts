/**
 * The actions a panel's rows run (snapshot, unpublish, ack …): which are under way, so their
 * buttons show busy, and the error of the last one, shown above the list until the next succeeds.
 */
export class RowActions {
  /** The keys of the actions under way. */
  readonly busy = new Set<string>();
  /** The last action's error, or null once one succeeds. */
  notice: unknown = null;

  /**
   * @param changed - redraws the panel (an action started)
   * @param done - reads the panel's data again (an action ended, whatever its outcome)
   */
  constructor(
    private readonly _changed: () => void,
    private readonly _done: () => Promise<unknown>
  ) {}

  /** Run `work` as action `key`, busy meanwhile; keep its error as the notice; then refresh. */
  async run(key: string, work: () => Promise<unknown>): Promise<void> {
    this.busy.add(key);
    this._changed();
    try {
      await work();
      this.notice = null;
    } catch (error) {
      this.notice = error;
    }
    this.busy.delete(key);
    await this._done();
  }
}
