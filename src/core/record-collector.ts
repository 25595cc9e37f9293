/**
 * The task's RecordCollector (core/task.ts) as an in-memory list: records wait here between commits,
 * so their number is bounded by what one commit interval produces.
 */
import type { OutputRecord, RecordCollector } from './task.js';

export class BufferedRecordCollector implements RecordCollector {
  private records: OutputRecord[] = [];

  send(record: OutputRecord): void {
    this.records.push(record);
  }

  pending(): readonly OutputRecord[] {
    // A copy: what a transaction was handed stays what it sent, whatever is sent meanwhile.
    return this.records.slice();
  }

  committed(count: number): void {
    this.records = count >= this.records.length ? [] : this.records.slice(count);
  }
}
