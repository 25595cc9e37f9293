/** Records between kafkajs' shapes and the port's (client.ts): raw records, headers, messages by topic. */
import type { IHeaders, KafkaMessage, Message, TopicMessages } from 'kafkajs';
import type { Headers, RawRecord } from '../../../core/records.js';
import type { PublishedMessage } from '../client.js';

function toHeaders(headers: IHeaders | undefined): Headers {
  const out: Headers = {};
  if (!headers) return out;
  for (const [name, value] of Object.entries(headers)) {
    // A repeated header keeps its last value: tributary's own headers are never repeated.
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    out[name] = last === undefined ? undefined : Buffer.isBuffer(last) ? last : Buffer.from(String(last));
  }
  return out;
}

export function toKafkaHeaders(headers: Headers): IHeaders {
  const out: IHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = value;
  return out;
}

/** A kafkajs message as the engine's RawRecord (also used by tests that read topics directly). */
export function toRawRecord(topic: string, partition: number, message: KafkaMessage): RawRecord {
  return {
    topic,
    partition,
    offset: BigInt(message.offset),
    timestamp: Number(message.timestamp),
    key: message.key ?? null,
    value: message.value ?? null,
    headers: toHeaders(message.headers),
  };
}

/** Messages grouped by topic, each topic's in the order given, as kafkajs' sendBatch takes them. */
export function topicMessagesOf(messages: readonly PublishedMessage[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const m of messages) {
    const message: Message = { key: m.key, value: m.value, headers: toKafkaHeaders(m.headers) };
    if (m.timestamp !== undefined) message.timestamp = String(m.timestamp);
    const list = byTopic.get(m.topic);
    if (list === undefined) byTopic.set(m.topic, [message]);
    else list.push(message);
  }
  return [...byTopic].map(([topic, list]) => ({ topic, messages: list }));
}
