export { TopologyBuilder, Stream, GroupedStream, WindowedStream, AggregatedStream } from './builder.js';
export type {
  StreamOptions,
  ProcessorContext,
  Processor,
  ProcessorSetup,
  ProcessOptions,
  ProcessorOutput,
  DedupeStreamOptions,
  GroupByOptions,
  PrimitiveGroupKey,
  BranchStream,
  BranchStreams,
} from './builder.js';
export { Topology } from './topology.js';
export { StateRoundTripError } from './accumulator-check.js';
export { StoreMismatchError } from '../state/store-manifest.js';
export type { KeyValueStore } from '../state/kv-store.js';
export type { TopologyDescription } from './topology.js';
export { GRAPH_FORMATS, renderTopologyGraph } from './graph-render.js';
export type { GraphFormat } from './graph-render.js';
export { count, sum, min, max, avg, quantiles, quantileName, custom } from './aggregators.js';
export type {
  Aggregator,
  AggregateSpec,
  AggregateResult,
  Quantiles,
  QuantileValues,
  QuantilesOptions,
  SketchBuckets,
  CustomAggregatorDefinition,
} from './aggregators.js';
export { seconds, minutes, hours, days, tumbling, windowStartOf } from './time.js';
export type { TumblingWindows } from './time.js';
export type { LatePolicy, WindowOptions } from './window-options.js';
export type { RecordMetadata, PunctuationType, Cancellable } from './graph.js';
export { TestDriver } from './test-driver.js';
export type { TestDriverOptions, PipeOptions, RestartOptions } from './test-driver.js';
