/**
 * Explicit retries from inside a handler.
 *
 * ```ts
 * const SyncInventoryLive = syncInventory.handle(({ sku }) =>
 *   Effect.gen(function*() {
 *     const stock = yield* (yield* Warehouse).stock(sku)
 *     if (stock.status === "pending") return yield* Retry.later("30 seconds") // run again in exactly 30 s
 *     return stock.count
 *   })
 * )
 * ```
 *
 * `Retry.later(delay)` fails the attempt with `RetryLater`: the message is retried after exactly `delay` (no backoff,
 * no jitter), the attempt counts against the actor's `maxRetries` (or the end of its `retry` schedule), and it is
 * logged at Info, not as an error. `retryWhen` and `throws` do not apply: the handler asked. Every handler may fail
 * with it, whatever the actor's declared error.
 *
 * @since 0.2.0
 */
import { Duration, Effect } from "effect"
import { RetryLater } from "./ErrandError.ts"

/**
 * Fails the running attempt so that the message runs again after exactly `delay` (finite, not negative).
 *
 * @category constructors
 * @since 0.2.0
 */
export const later = (delay: Duration.Input): Effect.Effect<never, RetryLater> =>
  Effect.suspend(() => {
    const millis = Duration.toMillis(Duration.fromInputUnsafe(delay))
    return Effect.fail(new RetryLater({ delayMillis: Number.isFinite(millis) && millis > 0 ? millis : 0 }))
  })

export {
  /**
   * The failure of `Retry.later`.
   *
   * @category errors
   * @since 0.2.0
   */
  RetryLater
}
