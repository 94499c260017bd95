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
 * `Retry.later(delay)` fails the attempt with `RetryLater`: the message is retried after exactly `delay` (finite, not
 * negative; anything else fails the attempt as a defect naming the option) (no backoff,
 * no jitter), the attempt counts against the actor's `maxRetries` (or the end of its `retry` schedule), and it is
 * logged at Info, not as an error. `retryWhen` and `throws` do not apply: the handler asked. Every handler may fail
 * with it, whatever the actor's declared error.
 *
 * @since 0.2.0
 */
import { type Duration, Effect } from "effect"
import { RetryLater } from "./ErrandError.ts"
import * as Check from "./internal/options.ts"

/**
 * Fails the running attempt so that the message runs again after exactly `delay` (finite, not negative).
 *
 * @category constructors
 * @since 0.2.0
 */
export const later = (delay: Duration.Input): Effect.Effect<never, RetryLater> =>
  Effect.suspend(() => {
    const millis = Check.duration("retry", "delay", delay, 0, 0, false)
    // a malformed delay is a bug in the handler: its attempt fails as a defect naming the option, never clamped
    return typeof millis === "number" ? Effect.fail(new RetryLater({ delayMillis: millis })) : Effect.die(millis)
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
