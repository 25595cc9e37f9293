/**
 * Runs async sections one at a time, in call order; a failed section does not stop the next. The
 * layer that drives a PartitionTask (the runtime's TaskHost, the TestDriver) owns one per task, since
 * task calls must not overlap and the driver also needs sequences of calls to be atomic.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(section: () => Promise<T>): Promise<T> {
    const result = this.tail.then(section, section);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
