import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PunctuationScheduler, nextMultiple } from '../../../src/topology/punctuation-scheduler.js';

/** A scheduler whose runner records (run time, callback time) pairs. */
function recording(now = () => 0) {
  const fired: Array<[number, number]> = [];
  let runAt = NaN;
  const scheduler = new PunctuationScheduler(now, (time, fire) => {
    runAt = time;
    fire();
  });
  return { scheduler, fired, record: (time: number) => fired.push([runAt, time]) };
}

/** Feeds stream times to every event-time schedule, as the engine does after each record. */
function feed(scheduler: PunctuationScheduler, streamTimes: number[]): void {
  const schedules = scheduler.eventTimeSchedules();
  for (const streamTime of streamTimes)
    for (const schedule of schedules) scheduler.afterRecord(schedule, streamTime);
}

test('nextMultiple: the first multiple of the interval after stream time, unknown before the first record', () => {
  assert.equal(nextMultiple(0, 10), 10);
  assert.equal(nextMultiple(9, 10), 10);
  assert.equal(nextMultiple(10, 10), 20);
  assert.equal(nextMultiple(-Infinity, 10), -Infinity);
});

test('an event-time schedule made before the first record starts at the multiple after it, without firing', () => {
  const { scheduler, fired, record } = recording();
  scheduler.schedule(10, 'event-time', record, -Infinity);
  feed(scheduler, [3, 9, 10, 15, 34]);
  assert.deepEqual(fired, [
    [10, 10],
    [34, 34],
  ]);
});

test('restore rule: a task reopened at a stream time fires at the stream times an uninterrupted one would', () => {
  const times = [3, 12, 18, 25, 31, 44, 47, 52, 68];
  const uninterrupted = recording();
  uninterrupted.scheduler.schedule(10, 'event-time', uninterrupted.record, -Infinity);
  feed(uninterrupted.scheduler, times);

  const beforeCrash = recording();
  beforeCrash.scheduler.schedule(10, 'event-time', beforeCrash.record, -Infinity);
  feed(beforeCrash.scheduler, times.slice(0, 4));
  // Reopened with the checkpointed stream time (25); the schedule is made again on open.
  const afterRestart = recording();
  afterRestart.scheduler.schedule(10, 'event-time', afterRestart.record, 25);
  feed(afterRestart.scheduler, times.slice(4));

  assert.deepEqual([...beforeCrash.fired, ...afterRestart.fired], uninterrupted.fired);
  assert.deepEqual(
    uninterrupted.fired.map(([, time]) => time),
    [12, 25, 31, 44, 52, 68],
  );
});

test('wall-time schedules fire from tick() once their interval passed, at stream time; cancel stops a schedule', () => {
  let now = 1_000;
  const { scheduler, fired, record } = recording(() => now);
  const schedule = scheduler.schedule(500, 'wall-time', record, 77);
  assert.deepEqual(scheduler.eventTimeSchedules(), []);
  scheduler.tick(1_499, 77);
  scheduler.tick(1_500, 77);
  scheduler.tick(1_900, 80);
  scheduler.tick(2_000, 80);
  assert.deepEqual(fired, [
    [77, 1_500],
    [80, 2_000],
  ]);
  schedule.cancel();
  now = 5_000;
  scheduler.tick(5_000, 90);
  assert.equal(fired.length, 2);
});

test('an interval must be positive', () => {
  const { scheduler, record } = recording();
  assert.throws(() => scheduler.schedule(0, 'event-time', record, 0), /must be positive/);
});

test('async wall-time callbacks run one after the other, and tick() settles when the last one has', async () => {
  const steps: string[] = [];
  const scheduler = new PunctuationScheduler(
    () => 0,
    (_time, fire) => fire(),
  );
  for (const name of ['a', 'b'])
    scheduler.schedule(
      100,
      'wall-time',
      async () => {
        steps.push(`${name} starts`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        steps.push(`${name} ends`);
      },
      0,
    );
  const done = scheduler.tick(100, 0);
  assert.ok(done instanceof Promise);
  assert.deepEqual(steps, ['a starts']);
  await done;
  assert.deepEqual(steps, ['a starts', 'a ends', 'b starts', 'b ends']);
});
