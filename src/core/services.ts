/**
 * The external services a sink or serde talks to (ClickHouse, the schema registry), as the
 * application's configuration describes them. The App resolves its configuration once (settings in
 * code, then TRIBUTARY_* variables) and hands these to every sink and serde of its topology, which use
 * them wherever their own options are silent. Sinks and serdes never read the environment themselves.
 */

export const DEFAULT_CLICKHOUSE_URL = 'http://127.0.0.1:8123';
/** Apicurio's Confluent-compatible API, as the local stack runs it. */
export const DEFAULT_SCHEMA_REGISTRY_URL = 'http://127.0.0.1:8081/apis/ccompat/v7';

export interface ServiceEndpoint {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
}

export interface ServiceDefaults {
  clickhouse: ServiceEndpoint;
  schemaRegistry: ServiceEndpoint;
}

/**
 * Implemented by sinks and serdes that talk to a service. The App calls it when it builds the
 * topology, before anything is opened; explicit options given to the sink or serde still win.
 */
export interface UsesServiceDefaults {
  useServiceDefaults?(defaults: ServiceDefaults): void;
}
