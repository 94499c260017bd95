/**
 * Every contender, by id. Modules are loaded lazily, so a child process only imports the library it measures.
 *
 * A column of the results table groups a Redis contender with its in-process counterpart (Errand's Redis broker and
 * its memory broker; PersistedQueue's Redis store and its memory store).
 */
import type { InProcessContender, RedisContender } from "../types.ts"

export const redisContenders = {
  errand: async () => (await import("./errand.ts")).contender,
  "errand-results": async () => (await import("./errand.ts")).withResults,
  bullmq: async () => (await import("./bullmq.ts")).contender,
  beequeue: async () => (await import("./beequeue.ts")).contender,
  "pq-redis": async () => (await import("./persistedqueue-redis.ts")).contender
} satisfies Record<string, () => Promise<RedisContender>>

export const inProcessContenders = {
  "errand-memory": async () => (await import("./errand-memory.ts")).contender,
  "errand-memory-observed": async () => (await import("./errand-memory.ts")).observed,
  "pq-memory": async () => (await import("./persistedqueue-memory.ts")).contender,
  pqueue: async () => (await import("./pqueue.ts")).contender,
  fastq: async () => (await import("./fastq.ts")).contender,
  "effect-queue": async () => (await import("./effect-queue.ts")).contender
} satisfies Record<string, () => Promise<InProcessContender>>

export type RedisContenderId = keyof typeof redisContenders
export type InProcessContenderId = keyof typeof inProcessContenders

export interface Column {
  /** The name used by `--contenders`. */
  readonly key: string
  readonly title: string
  readonly redis?: RedisContenderId
  readonly inProcess?: InProcessContenderId
}

/** Table columns, Errand first; every other column is a peer. */
export const columns: ReadonlyArray<Column> = [
  { key: "errand", title: "Errand", redis: "errand", inProcess: "errand-memory" },
  // Errand with `storeResults: true` on the actor: each job's result is written to Redis before its ack (not a peer)
  { key: "errand-results", title: "Errand, results stored", redis: "errand-results" },
  // Errand with Metrics.layer and Tracing.layer (native spans, no exporter), in process (not a peer)
  { key: "errand-observed", title: "Errand, metrics + tracing", inProcess: "errand-memory-observed" },
  { key: "bullmq", title: "BullMQ 6.7.0", redis: "bullmq" },
  { key: "beequeue", title: "Bee-Queue 2.0.0", redis: "beequeue" },
  { key: "persistedqueue", title: "Effect PersistedQueue", redis: "pq-redis", inProcess: "pq-memory" },
  { key: "pqueue", title: "p-queue 10", inProcess: "pqueue" },
  { key: "fastq", title: "fastq 1.20", inProcess: "fastq" },
  { key: "effectqueue", title: "Effect Queue", inProcess: "effect-queue" }
]
