/**
 * What the orchestrator asks one child process to run, and what the child answers on stdout.
 */
import type { InProcessContenderId, RedisContenderId } from "./contenders/index.ts"
import type { Metrics } from "./types.ts"

export interface RedisEndpoint {
  readonly host: string
  readonly port: number
}

export type Spec =
  | {
    readonly kind: "enqueue-one" | "enqueue-awaited" | "enqueue-bulk"
    readonly contender: RedisContenderId
    readonly redis: RedisEndpoint
    readonly n: number
  }
  | {
    readonly kind: "drain"
    readonly contender: RedisContenderId
    readonly redis: RedisEndpoint
    readonly n: number
    readonly concurrency: number
  }
  | {
    readonly kind: "latency-worker"
    readonly contender: RedisContenderId
    readonly redis: RedisEndpoint
    readonly warmup: number
    readonly n: number
    readonly concurrency: number
  }
  | {
    readonly kind: "latency-producer"
    readonly contender: RedisContenderId
    readonly redis: RedisEndpoint
    readonly total: number
    readonly rate: number
  }
  | {
    readonly kind: "in-process"
    readonly contender: InProcessContenderId
    readonly n: number
    readonly concurrency: number
  }
  | {
    readonly kind: "in-process-latency"
    readonly contender: InProcessContenderId
    readonly warmup: number
    readonly n: number
    readonly rate: number
    readonly concurrency: number
  }

export type Outcome =
  | { readonly ok: true; readonly metrics: Metrics }
  | { readonly ok: false; readonly error: string }

/** The prefix of the one stdout line carrying a child's `Outcome` as JSON. */
export const RESULT = "RESULT "
/** The line a latency worker prints once it is ready for jobs. */
export const READY = "READY"
