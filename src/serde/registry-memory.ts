/**
 * A schema registry in process memory, with the semantics tributary relies on: global ids shared
 * by identical schemas, versions per subject, BACKWARD compatibility against the latest version.
 * For unit tests and the in-process test driver; `available = false` simulates an outage.
 */
import type { Type } from 'avsc';
import { parseAvroSchema, schemaFingerprint } from './avro-types.js';
import {
  SchemaNotFoundError,
  SchemaRegistryError,
  type CompatibilityResult,
  type SchemaById,
  type SchemaRegistryClient,
  type SubjectVersion,
} from './registry.js';
import { RetriableError } from './types.js';

interface StoredSchema {
  id: number;
  /** Compact JSON, as Apicurio returns it. */
  schema: string;
  fingerprint: string;
  type: Type;
}

export class InMemorySchemaRegistry implements SchemaRegistryClient {
  readonly url = 'memory://schema-registry';
  /** False: every call throws RetriableError, as the HTTP client does when the registry is down. */
  available = true;
  /** 'NONE' accepts any change, like a subject configured without compatibility checks. */
  compatibility: 'BACKWARD' | 'NONE' = 'BACKWARD';
  /** Calls made, by method: lets tests assert that cached paths do not ask again. */
  readonly calls = {
    getSchemaById: 0,
    lookupSchema: 0,
    registerSchema: 0,
    getLatestVersion: 0,
    checkCompatibility: 0,
  };

  private readonly byId = new Map<number, StoredSchema>();
  private readonly byFingerprint = new Map<string, StoredSchema>();
  private readonly versionsBySubject = new Map<string, StoredSchema[]>();

  async getSchemaById(id: number): Promise<SchemaById> {
    this.calls.getSchemaById++;
    this.ensureAvailable();
    const stored = this.byId.get(id);
    if (stored === undefined) throw new SchemaNotFoundError(id, this.url);
    return { id, schema: stored.schema, schemaType: 'AVRO' };
  }

  async lookupSchema(subject: string, schema: string): Promise<SubjectVersion | undefined> {
    this.calls.lookupSchema++;
    this.ensureAvailable();
    const fingerprint = schemaFingerprint(parseAvroSchema(schema));
    const versions = this.versionsBySubject.get(subject) ?? [];
    const index = versions.findIndex((stored) => stored.fingerprint === fingerprint);
    const found = versions[index];
    return found === undefined
      ? undefined
      : { subject, version: index + 1, id: found.id, schema: found.schema };
  }

  async registerSchema(subject: string, schema: string): Promise<number> {
    this.calls.registerSchema++;
    this.ensureAvailable();
    const existing = await this.lookupSchema(subject, schema);
    if (existing !== undefined) return existing.id;
    const compatibility = this.compatibilityOf(subject, schema);
    if (!compatibility.compatible) {
      throw new SchemaRegistryError(
        `schema being registered is incompatible with the latest version of ${subject}: ${compatibility.messages.join('; ')}`,
        409,
        409,
      );
    }
    const stored = this.store(schema);
    const versions = this.versionsBySubject.get(subject) ?? [];
    versions.push(stored);
    this.versionsBySubject.set(subject, versions);
    return stored.id;
  }

  async getLatestVersion(subject: string): Promise<SubjectVersion | undefined> {
    this.calls.getLatestVersion++;
    this.ensureAvailable();
    const versions = this.versionsBySubject.get(subject) ?? [];
    const latest = versions[versions.length - 1];
    return latest === undefined
      ? undefined
      : { subject, version: versions.length, id: latest.id, schema: latest.schema };
  }

  async checkCompatibility(subject: string, schema: string): Promise<CompatibilityResult> {
    this.calls.checkCompatibility++;
    this.ensureAvailable();
    return this.compatibilityOf(subject, schema);
  }

  /** Stores a schema under a global id without a subject, like a schema registered elsewhere; returns its id. */
  addSchema(schema: string | object): number {
    return this.store(typeof schema === 'string' ? schema : JSON.stringify(schema)).id;
  }

  private compatibilityOf(subject: string, schema: string): CompatibilityResult {
    const versions = this.versionsBySubject.get(subject) ?? [];
    const latest = versions[versions.length - 1];
    if (latest === undefined || this.compatibility === 'NONE') return { compatible: true, messages: [] };
    try {
      // BACKWARD: consumers on the new schema can read what producers on the latest one wrote.
      parseAvroSchema(schema).createResolver(latest.type);
      return { compatible: true, messages: [] };
    } catch (error) {
      return { compatible: false, messages: [error instanceof Error ? error.message : String(error)] };
    }
  }

  private store(schema: string): StoredSchema {
    const type = parseAvroSchema(schema);
    const fingerprint = schemaFingerprint(type);
    const known = this.byFingerprint.get(fingerprint);
    if (known !== undefined) return known;
    const stored: StoredSchema = {
      id: this.byId.size + 1,
      schema: JSON.stringify(JSON.parse(schema)),
      fingerprint,
      type,
    };
    this.byId.set(stored.id, stored);
    this.byFingerprint.set(fingerprint, stored);
    return stored;
  }

  private ensureAvailable(): void {
    if (!this.available)
      throw new RetriableError(`schema registry at ${this.url} is unreachable (simulated outage)`);
  }
}
