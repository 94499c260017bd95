/**
 * Effect 4.1 `PersistedQueue` with its memory store (`layerStoreMemory`): `offer` n jobs, then `concurrency` fibers
 * loop on `take` with a no-op handler. Steady rate: the fibers wait on `take`, and each job is one `offer`.
 */
import { Deferred, Effect, Fiber, Layer, Schema } from "effect"
import * as PersistedQueue from "effect/persistence/PersistedQueue"
import type { InProcessContender, Job } from "../types.ts"

const JobSchema = Schema.Struct({ i: Schema.Number, t: Schema.Number })

export const contender: InProcessContender = {
  load: async (n, { concurrency, onJob }) => {
    const layer = PersistedQueue.layer.pipe(Layer.provide(PersistedQueue.layerStoreMemory))
    const queue = await Effect.runPromise(
      PersistedQueue.make({ name: "bench", schema: JobSchema }).pipe(Effect.provide(layer))
    )
    await Effect.runPromise(Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* queue.offer({ i, t: 0 })
    }))
    let done = 0
    const program = Effect.gen(function*() {
      const finished = yield* Deferred.make<void>()
      const handle = (job: Job) =>
        Effect.sync(() => {
          onJob(job)
          done++
        })
      const work = Effect.gen(function*() {
        while (true) {
          yield* queue.take(handle)
          if (done === n) yield* Deferred.succeed(finished, undefined)
        }
      })
      const fibers = yield* Effect.forEach(Array.from({ length: concurrency }), () => Effect.forkChild(work))
      yield* Deferred.await(finished)
      yield* Fiber.interruptAll(fibers)
    })
    return {
      run: () => Effect.runPromise(program),
      close: async () => {}
    }
  },
  start: async ({ concurrency, onJob }) => {
    const layer = PersistedQueue.layer.pipe(Layer.provide(PersistedQueue.layerStoreMemory))
    const queue = await Effect.runPromise(
      PersistedQueue.make({ name: "bench", schema: JobSchema }).pipe(Effect.provide(layer))
    )
    const handle = (job: Job) => Effect.sync(() => onJob(job))
    const fibers = Array.from({ length: concurrency }, () => Effect.runFork(Effect.forever(queue.take(handle))))
    return {
      add: (job) => Effect.runPromise(queue.offer(job)),
      close: () => Effect.runPromise(Fiber.interruptAll(fibers))
    }
  }
}
