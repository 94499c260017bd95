/**
 * The lease keeper: extends the leases of every delivery the worker holds, in one broker call, every third of the
 * lease. A failed extension is tried again at the next turn (a third of the lease later), not at once.
 *
 * @internal
 */
import { Effect } from "effect"
import type { BrokerError } from "../../ErrandError.ts"
import type { WorkerContext } from "./context.ts"

/** @internal */
export const leaseKeeper = (ctx: WorkerContext): Effect.Effect<never> => {
  const { broker, state: worker } = ctx
  const leaseMillis = ctx.settings.leaseMillis
  /** Extension failed and none has succeeded since: logged once. */
  let outage = false
  const extendLeases = Effect.suspend(() => {
    if (worker.held.length === 0) return Effect.void
    // the jobs of this call: the held set changes while it is on the wire
    const jobs = worker.held.slice()
    return broker.extend(jobs.map((job) => job.delivery), leaseMillis).pipe(
      Effect.flatMap((lost) => {
        if (lost.length > 0) {
          const ids = new Set(lost)
          // a job released meanwhile is left alone by `release`
          for (const job of jobs) if (ids.has(job.delivery.id)) worker.release(job)
        }
        const recovered = outage ? Effect.logInfo("Leases extended again") : Effect.void
        outage = false
        return Effect.andThen(
          recovered,
          Effect.forEach(
            lost,
            (messageId) =>
              Effect.logWarning(
                "Lease lost while the handler was running; its outcome will be rejected and the message will run again"
              ).pipe(Effect.annotateLogs({ messageId })),
            { discard: true }
          )
        )
      }),
      Effect.catch((error: BrokerError) => {
        if (outage) return Effect.void
        outage = true
        return Effect.logWarning("Could not extend leases; trying again every third of the lease", error)
      })
    )
  })
  return extendLeases.pipe(
    Effect.delay(Math.max(1, Math.floor(leaseMillis / 3))),
    Effect.forever
  )
}
