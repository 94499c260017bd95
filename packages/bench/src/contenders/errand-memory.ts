/**
 * Errand in process: the memory broker (`@errand/memory`) and the core worker. `sendBatch` n messages, then run
 * `Worker.layer` (concurrency 50) until the handler has seen all of them, then close it (graceful shutdown).
 * `observed`: the same with `Metrics.layer` and `Tracing.layer` (Effect's native tracer, no exporter), for their cost.
 * Steady rate: the worker runs on an empty queue, and each job is one `noop.send` run from plain code.
 */
import { Actor, Metrics, Tracing, Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { Deferred, Effect, Exit, Layer, ManagedRuntime, Schema, Scope } from "effect"
import type { InProcessContender, Job } from "../types.ts"

const JobSchema = Schema.Struct({ i: Schema.Number, t: Schema.Number })
const noop = Actor.make("noop", { queue: "bench", payload: JobSchema })

const make = (observe: boolean): InProcessContender => ({
  load: async (n, { concurrency, onJob }) => {
    const runtime = makeRuntime(observe)
    const jobs: Array<Job> = []
    for (let i = 0; i < n; i++) jobs.push({ i, t: 0 })
    await runtime.runPromise(noop.sendBatch(jobs))
    const program = Effect.gen(function*() {
      const finished = yield* Deferred.make<void>()
      let done = 0
      const handler = noop.handle((job) =>
        Effect.suspend(() => {
          onJob(job)
          return ++done === n ? Deferred.succeed(finished, undefined) : Effect.void
        })
      )
      yield* Layer.build(Worker.layer({ handlers: [handler], queues: ["bench"], concurrency }))
      yield* Deferred.await(finished)
    }).pipe(Effect.scoped)
    return {
      run: () => runtime.runPromise(program),
      close: () => runtime.dispose()
    }
  },
  start: async ({ concurrency, onJob }) => {
    const runtime = makeRuntime(observe)
    const handler = noop.handle((job) => Effect.sync(() => onJob(job)))
    const scope = Scope.makeUnsafe()
    await runtime.runPromise(
      Layer.buildWithScope(Worker.layer({ handlers: [handler], queues: ["bench"], concurrency }), scope)
    )
    return {
      add: (job) => runtime.runPromise(noop.send(job)),
      close: async () => {
        await runtime.runPromise(Scope.close(scope, Exit.void))
        await runtime.dispose()
      }
    }
  }
})

const makeRuntime = (observe: boolean) =>
  ManagedRuntime.make(
    observe
      ? Layer.provideMerge(Layer.provideMerge(Metrics.layer(), Tracing.layer), MemoryBroker.layer)
      : MemoryBroker.layer
  )

export const contender: InProcessContender = make(false)

export const observed: InProcessContender = make(true)
