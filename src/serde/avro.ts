/**
 * Avro in the Confluent wire format, with schemas from a Schema Registry.
 *
 * Decoding is synchronous once a schema id has been seen: the wire header is parsed here and the
 * writer type (plus its resolver to the reader schema) is cached per id, so the hot path is one
 * Map lookup and one avsc decode. Only an id seen for the first time costs a registry round trip.
 *
 * Which registry: the `registry` option (a client, or its config), else the App's `schemaRegistry`
 * settings (TRIBUTARY_SCHEMA_REGISTRY_* variables; see useServiceDefaults), else the local Apicurio.
 * The client is made on first use, so that the App can supply its settings after `avro()` is called.
 */
import type { Resolver, Type } from 'avsc';
import type { ServiceDefaults, ServiceEndpoint } from '../core/services.js';
import { rejectUnknownKeys } from '../core/unknown-keys.js';
import {
  avroSchemaText,
  DEFAULT_MAX_COLLECTION_ITEMS,
  InvalidUtf8Error,
  parseAvroSchema,
  schemaFingerprint,
  withLenientStrings,
  type AvroSchemaInput,
} from './avro-types.js';
import {
  checkRegistryConfig,
  createSchemaRegistryClient,
  HttpSchemaRegistryClient,
  isSchemaRegistryClient,
  probeSchemaRegistry,
  SchemaNotFoundError,
  type SchemaRegistryClient,
  type SchemaRegistryConfig,
} from './registry.js';
import {
  DeserializationError,
  RetriableError,
  SerializationError,
  type Serde,
  type SerdeContext,
} from './types.js';
import { encodeWireFormat, readSchemaId, WIRE_HEADER_SIZE } from './wire-format.js';

export interface AvroSerdeOptions {
  /**
   * A client (share one between serdes to share its connections) or its config. Default: the App's
   * `schemaRegistry` settings, else the local Apicurio (http://127.0.0.1:8081/apis/ccompat/v7).
   */
  registry?: SchemaRegistryClient | SchemaRegistryConfig;
  /**
   * The schema the application reads (decoded values are resolved to it, so old and new writers
   * both decode to this shape) and writes (encode registers or looks it up). Without it, values
   * decode with whatever schema wrote them.
   */
  readerSchema?: AvroSchemaInput;
  /** Subject for encoding; default `<topic>-<role>` (Confluent's TopicNameStrategy). */
  subject?: string | ((ctx: SerdeContext) => string);
  /**
   * Encode: register readerSchema under the subject when missing (default true, like Confluent's
   * serializers). With false, the schema must already be registered there (`npm run schemas:register`).
   */
  autoRegister?: boolean;
  /** Encode with exactly this registered schema id (its schema is fetched once); overrides readerSchema for writing. */
  schemaId?: number;
  /** How long an id the registry does not know stays known-unknown before asking again. Default 30 s. */
  unknownSchemaRecheckMs?: number;
  /** Cap on the items of one decoded array or map (protects against corrupted counts). */
  maxCollectionItems?: number;
}

/** Every option, so that an unknown one (a misspelling) fails instead of vanishing. */
const OPTION_NAMES: Record<keyof AvroSerdeOptions, true> = {
  registry: true,
  readerSchema: true,
  subject: true,
  autoRegister: true,
  schemaId: true,
  unknownSchemaRecheckMs: true,
  maxCollectionItems: true,
};

type Decoder = (framed: Buffer) => unknown;

/** A cache entry: a ready decoder, or a record-level failure that repeats for every record with that id. */
type DecoderEntry = { decode: Decoder } | { error: DeserializationError; expiresAt: number };

interface Encoder {
  schemaId: number;
  type: Type;
}

export function avro<T>(options: AvroSerdeOptions = {}): Serde<T> {
  return new AvroSerde<T>(options);
}

export class AvroSerde<T> implements Serde<T> {
  readonly name: string;
  /** Made on first use (see the header comment). */
  private client: SchemaRegistryClient | undefined;
  /** The App's `schemaRegistry` settings, used where the `registry` option is silent. */
  private defaults: ServiceEndpoint | undefined;
  private readonly readerType: Type | undefined;
  /** What autoRegister / lookup send to the registry, with docs and logical types intact. */
  private readonly readerSchemaText: string | undefined;
  private readonly readerFingerprint: string | undefined;
  private readonly maxCollectionItems: number;
  private readonly unknownSchemaRecheckMs: number;
  private readonly decoders = new Map<number, DecoderEntry>();
  private readonly pendingDecoders = new Map<number, Promise<DecoderEntry>>();
  private readonly encoders = new Map<string, Encoder>();
  private readonly pendingEncoders = new Map<string, Promise<Encoder>>();

  constructor(private readonly options: AvroSerdeOptions) {
    rejectUnknownKeys('avro serde', options, Object.keys(OPTION_NAMES));
    if (isSchemaRegistryClient(options.registry)) this.client = options.registry;
    else if (options.registry !== undefined) checkRegistryConfig(options.registry);
    this.maxCollectionItems = options.maxCollectionItems ?? DEFAULT_MAX_COLLECTION_ITEMS;
    this.unknownSchemaRecheckMs = options.unknownSchemaRecheckMs ?? 30_000;
    if (options.readerSchema !== undefined) {
      this.readerType = parseAvroSchema(options.readerSchema, this.maxCollectionItems);
      this.readerFingerprint = schemaFingerprint(this.readerType);
      this.readerSchemaText = avroSchemaText(options.readerSchema);
    }
    const subject = typeof options.subject === 'string' ? options.subject : undefined;
    this.name = `avro(${subject ?? this.readerType?.name ?? 'writer schema'})`;
  }

  /** The registry client this serde uses. */
  get registry(): SchemaRegistryClient {
    this.client ??= createSchemaRegistryClient(this.registryConfig());
    return this.client;
  }

  useServiceDefaults(defaults: ServiceDefaults): void {
    this.defaults = defaults.schemaRegistry;
  }

  /** The `registry` option's config; the App's endpoint and credentials fill in only when it names no URL. */
  private registryConfig(): SchemaRegistryConfig {
    const explicit = isSchemaRegistryClient(this.options.registry) ? undefined : this.options.registry;
    const config: SchemaRegistryConfig = { ...explicit };
    if (explicit?.url === undefined && this.defaults !== undefined) {
      config.url = this.defaults.url;
      // The App's credentials belong to the App's registry: never sent to a URL given here instead.
      if (config.auth === undefined && this.defaults.username !== undefined) {
        config.auth = { username: this.defaults.username, password: this.defaults.password ?? '' };
      }
    }
    return config;
  }

  deserialize(data: Buffer | null, ctx: SerdeContext): T | Promise<T> {
    if (data === null) {
      throw new DeserializationError(
        'decode-failed',
        `${where(ctx)}: null ${ctx.role ?? 'value'} (a tombstone?) is not an Avro record`,
      );
    }
    const schemaId = readSchemaId(data, where(ctx));
    const entry = this.decoders.get(schemaId);
    if (entry !== undefined && ('decode' in entry || entry.expiresAt > Date.now())) {
      return this.decodeWith(entry, data, ctx);
    }
    return this.loadDecoder(schemaId).then((loaded) => this.decodeWith(loaded, data, ctx));
  }

  /** At start: does the registry answer like a Confluent API, at this URL? (see probeSchemaRegistry) */
  probe(): Promise<void> {
    // A registry client of another kind (in memory, a custom transport) is not ours to probe over HTTP.
    if (!(this.registry instanceof HttpSchemaRegistryClient)) return Promise.resolve();
    const config = isSchemaRegistryClient(this.options.registry) ? undefined : this.options.registry;
    return probeSchemaRegistry({
      url: this.registry.url,
      ...(config?.auth === undefined ? {} : { auth: config.auth }),
    });
  }

  serialize(value: T, ctx: SerdeContext): Buffer | Promise<Buffer> {
    const subject = this.subjectFor(ctx);
    const encoder = this.encoders.get(subject);
    if (encoder !== undefined) return this.encodeWith(encoder, value, subject);
    return this.loadEncoder(subject).then((loaded) => this.encodeWith(loaded, value, subject));
  }

  private decodeWith(entry: DecoderEntry, data: Buffer, ctx: SerdeContext): T {
    if ('error' in entry) {
      // Same cause, but this record's own message (topic names differ between topics sharing a serde).
      throw new DeserializationError(entry.error.reason, `${where(ctx)}: ${entry.error.message}`);
    }
    return entry.decode(data) as T;
  }

  /** One registry request per unknown id, however many records with it arrive meanwhile. */
  private loadDecoder(schemaId: number): Promise<DecoderEntry> {
    let pending = this.pendingDecoders.get(schemaId);
    if (pending === undefined) {
      pending = this.fetchDecoder(schemaId).finally(() => this.pendingDecoders.delete(schemaId));
      this.pendingDecoders.set(schemaId, pending);
    }
    return pending;
  }

  private async fetchDecoder(schemaId: number): Promise<DecoderEntry> {
    let schemaText: string;
    try {
      const found = await this.registry.getSchemaById(schemaId);
      if (found.schemaType !== 'AVRO') {
        return this.remember(
          schemaId,
          'schema-mismatch',
          `schema id ${schemaId} is a ${found.schemaType} schema, not Avro`,
        );
      }
      schemaText = found.schema;
    } catch (error) {
      if (error instanceof SchemaNotFoundError) {
        return this.remember(schemaId, 'unknown-schema-id', error.message, this.unknownSchemaRecheckMs);
      }
      if (error instanceof RetriableError) throw error;
      // Any other registry answer (401, 403, an unexpected 404...) is a configuration problem, not
      // the record's: hold the partition and let an operator see the message, rather than
      // dead-lettering every record until someone notices.
      const message = error instanceof Error ? error.message : String(error);
      throw new RetriableError(`cannot fetch schema id ${schemaId}: ${message}`, { cause: error });
    }

    let writerType: Type;
    try {
      writerType = parseAvroSchema(schemaText, this.maxCollectionItems);
    } catch (error) {
      return this.remember(
        schemaId,
        'schema-mismatch',
        `writer schema id ${schemaId} is not valid Avro: ${messageOf(error)}`,
      );
    }
    const decode = this.buildDecoder(schemaId, writerType);
    const entry: DecoderEntry = typeof decode === 'function' ? { decode } : decode;
    this.decoders.set(schemaId, entry);
    return entry;
  }

  /** A decoder for one writer schema, or the reason its records can never be read. */
  private buildDecoder(schemaId: number, writerType: Type): Decoder | DecoderEntry {
    const readerType = this.readerType;
    if (readerType === undefined || this.readerFingerprint === schemaFingerprint(writerType)) {
      // Same encoding as the reader (the common case): no resolver needed.
      return (framed) => decodePayload(readerType ?? writerType, undefined, framed, schemaId);
    }
    let resolver: Resolver;
    try {
      resolver = readerType.createResolver(writerType);
    } catch (error) {
      return this.remember(
        schemaId,
        'schema-mismatch',
        `writer schema id ${schemaId} (${writerType.name ?? writerType.typeName}) cannot be read as ` +
          `${readerType.name ?? readerType.typeName}: ${messageOf(error)}`,
      );
    }
    return (framed) => decodePayload(readerType, resolver, framed, schemaId);
  }

  private remember(
    schemaId: number,
    reason: 'unknown-schema-id' | 'schema-mismatch',
    message: string,
    ttlMs = Number.POSITIVE_INFINITY,
  ): DecoderEntry {
    const entry: DecoderEntry = {
      error: new DeserializationError(reason, message),
      expiresAt: Date.now() + ttlMs,
    };
    this.decoders.set(schemaId, entry);
    return entry;
  }

  private subjectFor(ctx: SerdeContext): string {
    const { subject } = this.options;
    if (typeof subject === 'string') return subject;
    if (typeof subject === 'function') return subject(ctx);
    return `${ctx.topic}-${ctx.role ?? 'value'}`;
  }

  private encodeWith(encoder: Encoder, value: T, subject: string): Buffer {
    let payload: Buffer;
    try {
      payload = encoder.type.toBuffer(value);
    } catch (error) {
      throw new SerializationError(describeInvalidValue(encoder.type, value, subject, error), {
        cause: error,
      });
    }
    return encodeWireFormat(encoder.schemaId, payload);
  }

  private loadEncoder(subject: string): Promise<Encoder> {
    let pending = this.pendingEncoders.get(subject);
    if (pending === undefined) {
      pending = this.resolveEncoder(subject)
        .then((encoder) => {
          this.encoders.set(subject, encoder);
          return encoder;
        })
        .finally(() => this.pendingEncoders.delete(subject));
      this.pendingEncoders.set(subject, pending);
    }
    return pending;
  }

  private async resolveEncoder(subject: string): Promise<Encoder> {
    const { schemaId, autoRegister = true } = this.options;
    if (schemaId !== undefined) {
      const found = await this.registry.getSchemaById(schemaId);
      return { schemaId, type: parseAvroSchema(found.schema, this.maxCollectionItems) };
    }
    if (this.readerType === undefined || this.readerSchemaText === undefined) {
      const latest = await this.registry.getLatestVersion(subject);
      if (latest === undefined) {
        throw new SerializationError(
          `cannot encode for subject "${subject}": it has no schema in the registry at ${this.registry.url}, ` +
            `and the serde has no readerSchema to register`,
        );
      }
      return { schemaId: latest.id, type: parseAvroSchema(latest.schema, this.maxCollectionItems) };
    }
    const schemaText = this.readerSchemaText;
    if (autoRegister) {
      return { schemaId: await this.registry.registerSchema(subject, schemaText), type: this.readerType };
    }
    const registered = await this.registry.lookupSchema(subject, schemaText);
    if (registered === undefined) {
      throw new SerializationError(
        `cannot encode for subject "${subject}": schema ${this.readerType.name ?? ''} is not registered there ` +
          `(registry ${this.registry.url}); run \`npm run schemas:register\` or pass autoRegister: true`,
      );
    }
    return { schemaId: registered.id, type: this.readerType };
  }
}

function decodePayload(
  type: Type,
  resolver: Resolver | undefined,
  framed: Buffer,
  schemaId: number,
): unknown {
  let decoded: { value: unknown; offset: number };
  try {
    decoded = type.decode(framed, WIRE_HEADER_SIZE, resolver);
  } catch (error) {
    if (error instanceof InvalidUtf8Error) {
      throw new DeserializationError(
        'decode-failed',
        `payload does not decode with schema id ${schemaId}: ${invalidStringMessage(type, resolver, framed, error)}`,
        { cause: error },
      );
    }
    // avsc throws on garbage it cannot interpret (a union or enum index out of range, an invalid
    // length); a corrupted count may also run into the collection cap (CollectionTooLargeError).
    throw new DeserializationError(
      'decode-failed',
      `payload does not decode with schema id ${schemaId}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  if (decoded.offset < 0) {
    throw new DeserializationError(
      'truncated',
      `payload of ${framed.length - WIRE_HEADER_SIZE} bytes ends before a full record of schema id ${schemaId}`,
    );
  }
  if (decoded.offset !== framed.length) {
    // Leftover bytes mean the payload was not written with this schema (or two records were glued).
    throw new DeserializationError(
      'decode-failed',
      `${framed.length - decoded.offset} bytes left after decoding a record of schema id ${schemaId}`,
    );
  }
  return decoded.value;
}

/**
 * `field "a.b" holds invalid UTF-8 (N bytes at payload offset M)`. The field is found by decoding the
 * record again leniently (U+FFFD substitutes) and looking for them, on this error path only.
 */
function invalidStringMessage(
  type: Type,
  resolver: Resolver | undefined,
  framed: Buffer,
  error: InvalidUtf8Error,
): string {
  const where = `${error.byteLength} bytes at payload offset ${error.offset - WIRE_HEADER_SIZE}`;
  let value: unknown;
  try {
    value = withLenientStrings(() => type.decode(framed, WIRE_HEADER_SIZE, resolver).value);
  } catch {
    return `a string of ${where} is not valid UTF-8`;
  }
  const paths: string[] = [];
  const visit = (node: unknown, path: string): void => {
    if (paths.length >= 3) return;
    if (typeof node === 'string') {
      if (node.includes('\uFFFD')) paths.push(path === '' ? '(root)' : path);
    } else if (Array.isArray(node)) {
      node.forEach((item, index) => visit(item, `${path}[${index}]`));
    } else if (typeof node === 'object' && node !== null && !Buffer.isBuffer(node)) {
      for (const [key, child] of Object.entries(node)) {
        if (key.includes('\uFFFD')) paths.push(`${path === '' ? '' : `${path}.`}${key} (a map key)`);
        visit(child, path === '' ? key : `${path}.${key}`);
      }
    }
  };
  visit(value, '');
  if (paths.length === 0) return `a string of ${where} is not valid UTF-8`;
  const names = paths.map((path) => `"${path}"`).join(', ');
  return `${paths.length === 1 ? `field ${names} holds` : `fields ${names} hold`} invalid UTF-8 (${where})`;
}

/** Names the fields that do not match, instead of avsc's "invalid record" with the whole value. */
function describeInvalidValue(type: Type, value: unknown, subject: string, error: unknown): string {
  const problems: string[] = [];
  type.isValid(value, {
    errorHook: (path, fieldValue) => {
      if (problems.length < 5) problems.push(`${path.join('.') || '(root)'} = ${preview(fieldValue)}`);
    },
  });
  const detail = problems.length > 0 ? `invalid fields: ${problems.join('; ')}` : messageOf(error);
  return `value does not match the Avro schema ${type.name ?? type.typeName} of subject "${subject}": ${detail}`;
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'bigint' ? `${value}n` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function where(ctx: SerdeContext): string {
  return `${ctx.topic} ${ctx.role ?? 'value'}`;
}
