/**
 * Compile-time tests of the DSL's types: `npm run typecheck` checks this file (it is never run). Each
 * `exactly<X>()(value)` fails to compile unless `value` has exactly the type X (so `unknown` or `any`
 * does not pass for a precise type), and each `@ts-expect-error` line fails to compile if the wrong use
 * below it compiles.
 */
import { TopologyBuilder, count, memorySink, tumbling } from '../../../src/index.js';
import type { ProcessorContext, Stream, WindowResult } from '../../../src/index.js';
import { jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;

/** `exactly<X>()(value)` compiles only when `value` is of type X, exactly. */
function exactly<Expected>() {
  return <Actual>(value: Actual & (Equals<Actual, Expected> extends true ? unknown : never)): void => {
    void value;
  };
}

interface Big extends UsageEvent {
  big: true;
}
const isBig = (e: UsageEvent): e is Big => e.value >= 100;

export function branchGivesATupleOfStreams(): void {
  const events = new TopologyBuilder().stream('usage', jsonSerde<UsageEvent>());

  // Destructuring gives one Stream<T> per predicate: no `| undefined` under noUncheckedIndexedAccess.
  const [small, large] = events.branch(
    (e) => e.value < 10,
    (e) => e.value < 100,
  );
  exactly<Stream<UsageEvent>>()(small);
  exactly<Stream<UsageEvent>>()(large);
  small.map((e) => e.id);

  // A type-guard predicate narrows its own stream only.
  const [bigOnes, rest] = events.branch(isBig, () => true);
  exactly<Stream<Big>>()(bigOnes);
  exactly<Stream<UsageEvent>>()(rest);
  bigOnes.map((e) => e.big);

  const one = events.branch((e) => e.subject === 'a');
  exactly<[Stream<UsageEvent>]>()(one);
  // @ts-expect-error: one predicate, one stream
  void one[1];

  // @ts-expect-error: three streams from two predicates
  const [, , third] = events.branch(
    (e) => e.value < 10,
    (e) => e.value < 100,
  );
  void third;

  // @ts-expect-error: a predicate must take the stream's values
  events.branch((s: string) => s.length > 0);

  // @ts-expect-error: only a type guard narrows
  exactly<Stream<Big>>()(events.branch((e) => e.value >= 100)[0]);

  // Predicates from an array give an array of streams.
  const predicates: Array<(e: UsageEvent) => boolean> = [(e) => e.value < 10];
  exactly<Array<Stream<UsageEvent>>>()(events.branch(...predicates));
}

interface Tagged {
  id: string;
  tag: string;
}

export function processInfersItsOutputType(): void {
  const events = new TopologyBuilder().stream('usage', jsonSerde<UsageEvent>());

  // What the process function returns is forwarded, and its type is the stream's.
  const tagged = events.process(() => (e) => ({ id: e.id, tag: 'x' }));
  exactly<Stream<{ id: string; tag: string }>>()(tagged);
  tagged.map((s) => s.tag.toUpperCase());

  // ...also with the context in use (stores), and `undefined` forwards nothing.
  const totals = events.process(
    (ctx) => {
      const store = ctx.getStore<number>('totals');
      return (e) => {
        const total = (store.get(e.subject) ?? 0) + e.value;
        store.put(e.subject, total);
        return total > 10 ? { subject: e.subject, total } : undefined;
      };
    },
    { stores: ['totals'] },
  );
  exactly<Stream<{ subject: string; total: number }>>()(totals);
  totals.map((s) => s.total + 1);

  // A processor object's process method is inferred the same way.
  const ids = events.process(() => ({ process: (e: UsageEvent) => e.id }));
  exactly<Stream<string>>()(ids);

  // ctx.forward (e.g. from punctuation) takes the type of an annotated context...
  const punctuated = events.process((ctx: ProcessorContext<Tagged>) => {
    ctx.schedule(1_000, 'event-time', (time) => ctx.forward({ id: String(time), tag: 'tick' }));
    return (e) => {
      ctx.forward({ id: e.id, tag: 'seen' });
    };
  });
  exactly<Stream<Tagged>>()(punctuated);
  punctuated.map((s) => s.tag);

  // ...or of an explicit type argument, as before.
  const explicit = events.process<string>((ctx) => (e) => ctx.forward(e.id));
  exactly<Stream<string>>()(explicit);
  exactly<Stream<number>>()(events.process<number>(() => (e) => e.value));

  // Both: the stream carries either.
  const either = events.process((ctx: ProcessorContext<number>) => (e) => {
    ctx.forward(e.value);
    return e.id;
  });
  exactly<Stream<number | string>>()(either);

  // A processor that emits nothing gives a stream of nothing.
  exactly<Stream<never>>()(events.process(() => () => {}));

  // @ts-expect-error: ctx.forward has no type to check against without an annotation or type argument
  events.process((ctx) => (e) => ctx.forward(e.id));

  // @ts-expect-error: the process function returns a number, the declared output is a string
  events.process<string>(() => (e) => e.value);

  // @ts-expect-error: forwards a number where the context declares strings
  events.process((ctx: ProcessorContext<string>) => (e) => ctx.forward(e.value));

  // @ts-expect-error: the inferred output has no such field
  tagged.map((s) => s.missing);
}

export function aPrimitiveGroupKeyTakesTheGivenName(): void {
  const events = new TopologyBuilder().stream('usage', jsonSerde<UsageEvent>());

  const bySubject = events
    .groupBy((e) => e.subject, { key: 'subject' })
    .window(tumbling())
    .aggregate({ n: count() });
  bySubject.map((row) => exactly<{ subject: string }>()(row.key));
  bySubject.map((row) => exactly<number>()(row.value.n));
  bySubject.to(memorySink<WindowResult<{ subject: string }, { n: number }>>('by-subject'));

  const byFlag = events.groupBy((e) => e.value > 10, { key: 'large' });
  byFlag
    .window(tumbling())
    .aggregate({ n: count() })
    .map((row) => exactly<boolean>()(row.key.large));

  // Without a name the primitive key is the key itself (the column `key`), as before.
  const plain = events
    .groupBy((e) => e.subject)
    .window(tumbling())
    .aggregate({ n: count() });
  plain.map((row) => exactly<string>()(row.key));

  // @ts-expect-error: an object key names its columns itself
  events.groupBy((e) => ({ subject: e.subject }), { key: 'subject' });

  // @ts-expect-error: the key is renamed, not kept
  bySubject.map((row) => row.key.key);
}

export function streamsAreNotThenables(): void {
  const events = new TopologyBuilder().stream('usage', jsonSerde<UsageEvent>());
  // Awaiting a stream gives the stream back (nothing to unwrap).
  exactly<Stream<UsageEvent>>()(null as unknown as Awaited<typeof events>);
  // @ts-expect-error: no `then` on a stream
  void events.then;
}

export function processPrefetchKnowsTheStreamType(): void {
  const events = new TopologyBuilder().stream('usage', jsonSerde<UsageEvent>());
  // The prefetch function gets the values the processor gets, and names one key or several.
  events.process(() => () => undefined, {
    stores: ['totals'],
    prefetch: { totals: (e) => (e.value > 0 ? e.subject : [e.subject, e.id]) },
  });
  events.process(() => () => undefined, {
    stores: ['totals'],
    // @ts-expect-error: UsageEvent has no `account`
    prefetch: { totals: (e) => e.account },
  });
  events.process(() => () => undefined, {
    stores: ['totals'],
    // @ts-expect-error: a key is a string
    prefetch: { totals: (e) => e.value },
  });
}
