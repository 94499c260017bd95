/**
 * Errand: the Redis broker (`@errand/redis`) and the core worker, with defaults except `concurrency`. A producer sends
 * with `actor.send` (one message per broker call) or `actor.sendBatch` (one broker call per batch); a worker is
 * `Worker.layer` with a no-op handler.
 */
import { Actor, Broker, Worker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Context, Effect, Layer, ManagedRuntime, Schema } from "effect"
import type { Job, RedisContender, RedisTarget } from "../types.ts"

const JobSchema = Schema.Struct({ i: Schema.Number, t: Schema.Number })

const noop = (target: RedisTarget, storeResults = false) =>
  Actor.make("noop", { queue: target.queue, payload: JobSchema, storeResults })

/** Builds `layer` once and returns a `runPromise` for effects needing its services, and its disposal. */
const start = async <R, E>(layer: Layer.Layer<R, E>) => {
  const runtime = ManagedRuntime.make(layer)
  const context: Context.Context<R> = await runtime.context()
  return {
    run: <A, X>(effect: Effect.Effect<A, X, R>): Promise<A> => Effect.runPromiseWith(context)(effect),
    dispose: () => runtime.dispose()
  }
}

const make = (storeResults: boolean): RedisContender => ({
  producer: async (target) => {
    const actor = noop(target)
    const { run, dispose } = await start(RedisBroker.layer({ url: target.url }))
    return {
      add: async (job) => {
        await run(actor.send(job))
      },
      addBulk: async (jobs) => {
        await run(actor.sendBatch(jobs))
      },
      leftover: async () => {
        const stats = await run(Broker.Broker.use((broker) => broker.stats(target.queue)))
        return { pending: stats.ready + stats.delayed + stats.inFlight, failed: stats.dead }
      },
      close: dispose
    }
  },
  worker: async (target, { concurrency, onJob }) => {
    const handler = noop(target, storeResults).handle((job: Job) => Effect.sync(() => onJob(job)))
    const worker = Worker.layer({ handlers: [handler], queues: [target.queue], concurrency }).pipe(
      Layer.provide(RedisBroker.layer({ url: target.url }))
    )
    const { dispose } = await start(worker)
    return { close: dispose }
  }
})

export const contender: RedisContender = make(false)

/** Errand with `storeResults: true`: every job's (void) result is stored in Redis before the ack. */
export const withResults: RedisContender = make(true)
