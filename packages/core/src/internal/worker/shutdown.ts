/**
 * Shutdown: stop taking, release prefetched messages, let handlers finish for `shutdownTimeout`, interrupt the rest
 * and record what they leave behind for at most `releaseTimeout`. Every step is bounded, so the worker stops even if
 * a handler ignores interruption or the broker is down; what it could not release comes back when its lease lapses.
 *
 * @internal
 */
import { Effect, type Fiber } from "effect"
import * as MiddlewareHooks from "../middleware.ts"
import type { WorkerContext } from "./context.ts"
import type { Outcomes } from "./outcome.ts"
import type { Runners } from "./runners.ts"
import type { Settlements } from "./settlement.ts"

/** @internal */
export const shutdown = (
  ctx: WorkerContext,
  parts: {
    readonly settlements: Settlements
    readonly outcomes: Outcomes
    readonly runners: Runners
    readonly takeLoops: ReadonlyArray<Fiber.Fiber<unknown, unknown>>
    readonly leaseKeeper: Fiber.Fiber<unknown, unknown>
  }
): Effect.Effect<void> => {
  const { clock, state: worker } = ctx
  const { shutdownTimeout, releaseTimeout } = ctx.settings
  const { settlements, outcomes, runners } = parts

  /** Waits until no handler runs. */
  const untilIdle = Effect.callback<void>((resume) => {
    if (worker.running === 0) return resume(Effect.void)
    worker.onIdle = () => resume(Effect.void)
    return Effect.sync(() => {
      worker.onIdle = undefined
    })
  })
  /** Runs a step for at most `millis`: true when it finished in time. */
  const within = (millis: number, step: Effect.Effect<void>): Effect.Effect<boolean> =>
    Effect.interruptible(step).pipe(
      Effect.timeoutOption(millis),
      Effect.map((done) => done._tag === "Some")
    )

  return Effect.gen(function*() {
    worker.stopping = true
    for (const loop of parts.takeLoops) loop.interruptUnsafe()
    // prefetched messages go back at once
    for (let job = worker.nextBuffered(); job !== undefined; job = worker.nextBuffered()) {
      const delivery = job.delivery
      worker.releasedCount++
      settlements.settled(job, { _tag: "Release", delivery })
      if (ctx.middlewares.length > 0) {
        const outcome = MiddlewareHooks.outcomeOf({ _tag: "Release", delivery }, undefined)
        ctx.runSystem(MiddlewareHooks.afterSettle(ctx.middlewares, outcome))
      }
      yield* outcomes.released(delivery).pipe(Effect.annotateLogs({ queue: delivery.queue, messageId: delivery.id }))
    }
    if (!(yield* within(shutdownTimeout, untilIdle))) {
      yield* Effect.logWarning(
        `${worker.running} handler(s) still running after the shutdown timeout; interrupting them`
      )
    }
    const deadline = clock.currentTimeMillisUnsafe() + releaseTimeout
    for (const runner of runners.alive) runner.fiber?.interruptUnsafe()
    const stopped = yield* within(releaseTimeout, untilIdle)
    parts.leaseKeeper.interruptUnsafe()
    runners.stopWatchdog()
    const recorded = yield* within(
      Math.max(0, deadline - clock.currentTimeMillisUnsafe()),
      Effect.forEach(worker.queues, (state) => {
        state.flushing = true
        return settlements.flush(state)
      }, { concurrency: "unbounded", discard: true })
    )
    const unsettled = recorded ? 0 : worker.queues.reduce((n, state) => n + state.pending.length, 0)
    const finished = worker.succeededCount + worker.retriedCount + worker.deadLetteredCount
    const summary =
      `Worker stopped: ${finished} message${finished === 1 ? "" : "s"} finished (${worker.succeededCount} ` +
      `succeeded, ${worker.retriedCount} to retry, ${worker.deadLetteredCount} dead-lettered), ${worker.releasedCount} ` +
      "released"
    yield* worker.running === 0 && unsettled === 0 && stopped
      ? Effect.logInfo(summary)
      : Effect.logWarning(
        `${summary}; ${worker.running} handler(s) ignored interruption and ${unsettled} outcome(s) could not be ` +
          "recorded in time: their messages come back when their leases lapse"
      )
  }).pipe(Effect.annotateLogs({ module: "Worker" }))
}
