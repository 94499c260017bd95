/**
 * Errand in process: the memory broker (`@errand/memory`) and the core worker. `sendBatch` n messages, then run
 * `Worker.layer` (concurrency 50) until the handler has seen all of them, then close it (graceful shutdown).
 */
import { Actor, Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { Deferred, Effect, Layer, ManagedRuntime, Schema } from "effect"
import type { InProcessContender, Job } from "../types.ts"

const JobSchema = Schema.Struct({ i: Schema.Number, t: Schema.Number })
const noop = Actor.make("noop", { queue: "bench", payload: JobSchema })

export const contender: InProcessContender = {
  load: async (n, { concurrency, onJob }) => {
    const runtime = ManagedRuntime.make(MemoryBroker.layer)
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
  }
}
