/**
 * A bare Effect `Queue` (unbounded) drained by `concurrency` fibers: the floor for any Effect-based worker. Steady
 * rate: the fibers wait on `Queue.take`, and each job is one `Queue.offerUnsafe` from plain code.
 */
import { Deferred, Effect, Fiber, Queue } from "effect"
import type { InProcessContender, Job } from "../types.ts"

export const contender: InProcessContender = {
  load: async (n, { concurrency, onJob }) => {
    const queue = Effect.runSync(Queue.unbounded<Job>())
    const jobs: Array<Job> = []
    for (let i = 0; i < n; i++) jobs.push({ i, t: 0 })
    Effect.runSync(Queue.offerAll(queue, jobs))
    let done = 0
    const program = Effect.gen(function*() {
      const finished = yield* Deferred.make<void>()
      const work = Effect.gen(function*() {
        while (true) {
          const job = yield* Queue.take(queue)
          onJob(job)
          if (++done === n) yield* Deferred.succeed(finished, undefined)
        }
      })
      const fibers = yield* Effect.forEach(Array.from({ length: concurrency }), () => Effect.forkChild(work))
      yield* Deferred.await(finished)
      yield* Fiber.interruptAll(fibers)
    })
    return {
      run: () => Effect.runPromise(program),
      close: async () => {
        Effect.runSync(Queue.shutdown(queue))
      }
    }
  },
  start: async ({ concurrency, onJob }) => {
    const queue = Effect.runSync(Queue.unbounded<Job>())
    const work = Effect.gen(function*() {
      while (true) onJob(yield* Queue.take(queue))
    })
    const fibers = Array.from({ length: concurrency }, () => Effect.runFork(work))
    return {
      add: (job) => Promise.resolve(Queue.offerUnsafe(queue, job)),
      close: () => Effect.runPromise(Effect.andThen(Fiber.interruptAll(fibers), Effect.asVoid(Queue.shutdown(queue))))
    }
  }
}
