/**
 * The contracts every contender implements, and the shapes the harness passes between processes.
 */

/** The payload of every benchmark job. `t` is the add time on the shared clock (`now()`), 0 when unused. */
export interface Job {
  readonly i: number
  readonly t: number
}

/** Where the private Redis server listens, and the queue name a scenario uses. */
export interface RedisTarget {
  readonly host: string
  readonly port: number
  readonly url: string
  readonly queue: string
}

/** How many jobs a queue still holds: not yet finished (waiting, delayed or active), and failed. */
export interface Leftover {
  readonly pending: number
  readonly failed: number
}

/** The producing side of a Redis-backed contender. */
export interface Producer {
  /** Adds one job (one library call). */
  readonly add: (job: Job) => Promise<void>
  /** Adds many jobs in one library call; `undefined` when the library has no bulk add. */
  readonly addBulk: ((jobs: ReadonlyArray<Job>) => Promise<void>) | undefined
  /** Counts the jobs left in the queue. */
  readonly leftover: () => Promise<Leftover>
  readonly close: () => Promise<void>
}

/** A running worker; `close` stops it gracefully. */
export interface Consumer {
  readonly close: () => Promise<void>
}

/** A Redis-backed queue library, driven through the same scenarios as every other one. */
export interface RedisContender {
  readonly producer: (target: RedisTarget) => Promise<Producer>
  /** Starts a worker that calls `onJob` once per job at handler start, then completes the job (a no-op). */
  readonly worker: (
    target: RedisTarget,
    options: { readonly concurrency: number; readonly onJob: (job: Job) => void }
  ) => Promise<Consumer>
}

/** A loaded in-process queue: `n` jobs enqueued, not yet running. */
export interface Loaded {
  /** Starts processing; resolves once the library reports the queue drained. */
  readonly run: () => Promise<void>
  readonly close: () => Promise<void>
}

/** A started in-process queue: its consumers run and wait; jobs arrive one `add` at a time. */
export interface Started {
  /**
   * Adds one job from plain code (a timer callback), as an app adds work when a request arrives. The promise settles
   * once the library accepted the job (its send completed); it rejects if the add failed.
   */
  readonly add: (job: Job) => Promise<unknown>
  readonly close: () => Promise<void>
}

/** An in-process (no Redis) queue library. */
export interface InProcessContender {
  /** Enqueues `n` no-op jobs `{ i: 0..n-1 }` without processing them. The handler calls `onJob`. */
  readonly load: (
    n: number,
    options: { readonly concurrency: number; readonly onJob: (job: Job) => void }
  ) => Promise<Loaded>
  /** Starts `concurrency` consumers on an empty queue, ready for `add`. The no-op handler calls `onJob`. */
  readonly start: (
    options: { readonly concurrency: number; readonly onJob: (job: Job) => void }
  ) => Promise<Started>
}

/** The measurements of one run; keys are metric ids (see `metrics.ts`). */
export type Metrics = Readonly<Record<string, number>>
