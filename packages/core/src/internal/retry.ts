/**
 * Retry decisions, replayed from the attempt count stored with a message so that any process computes the same
 * backoff.
 *
 * @internal
 */
import { Duration, Effect, Pull, Schedule } from "effect"

/** @internal */
export interface RetryPolicy<in Failure> {
  /** Yields the delay before each retry. */
  readonly schedule: Schedule.Schedule<unknown, Failure>
  /** Retries allowed after the first run; `undefined` when the schedule's own end is the limit. */
  readonly maxRetries: number | undefined
  readonly retryWhen: ((failure: Failure, attempts: number) => boolean) | undefined
  /** Error tags that are never retried. */
  readonly throws: ReadonlySet<string>
  /** The bounds of the default backoff, for per-message overrides (`send(…, { minBackoff })`). */
  readonly minBackoffMillis: number
  readonly maxBackoffMillis: number
}

/**
 * The policy of one message: the actor's, with the limits its sender overrode. A message that sets `minBackoff` or
 * `maxBackoff` uses the default exponential backoff with those bounds, even if the actor has a custom `retry`.
 *
 * @internal
 */
export const withLimits = <Failure>(
  policy: RetryPolicy<Failure>,
  limits: { readonly maxRetries?: number; readonly minBackoff?: number; readonly maxBackoff?: number } | undefined
): RetryPolicy<Failure> => {
  if (limits === undefined) return policy
  const { maxRetries, minBackoff, maxBackoff } = limits
  if (maxRetries === undefined && minBackoff === undefined && maxBackoff === undefined) return policy
  const backoff = minBackoff !== undefined || maxBackoff !== undefined
  const min = minBackoff ?? policy.minBackoffMillis
  const max = Math.max(min, maxBackoff ?? policy.maxBackoffMillis)
  return {
    ...policy,
    schedule: backoff ? defaultBackoff(min, max) : policy.schedule,
    maxRetries: maxRetries ?? (backoff ? policy.maxRetries ?? 20 : policy.maxRetries),
    minBackoffMillis: min,
    maxBackoffMillis: max
  }
}

/** @internal */
export type RetryDecision =
  | { readonly _tag: "Retry"; readonly delayMillis: number }
  | { readonly _tag: "GiveUp"; readonly why: "throws" | "retryWhen" | "exhausted" }

/**
 * Dramatiq's default backoff as a Schedule: exponential from `minBackoff`, doubling on each retry, jittered (±20%, by
 * `Schedule.jittered`) and clamped to `[minBackoff, maxBackoff]`.
 *
 * @internal
 */
export const defaultBackoff = (
  minBackoff: Duration.Input,
  maxBackoff: Duration.Input
): Schedule.Schedule<Duration.Duration> => {
  const min = Duration.toMillis(Duration.fromInputUnsafe(minBackoff))
  const max = Duration.toMillis(Duration.fromInputUnsafe(maxBackoff))
  return Schedule.exponential(minBackoff).pipe(
    Schedule.jittered,
    Schedule.modifyDelay(({ duration }) =>
      Effect.succeed(Duration.millis(Math.min(max, Math.max(min, Duration.toMillis(duration)))))
    )
  )
}

const GIVE_UP_THROWS: RetryDecision = { _tag: "GiveUp", why: "throws" }
const GIVE_UP_RETRY_WHEN: RetryDecision = { _tag: "GiveUp", why: "retryWhen" }
const GIVE_UP_EXHAUSTED: RetryDecision = { _tag: "GiveUp", why: "exhausted" }

/**
 * Replays `schedule` for `attempts` steps (each fed `failure`) and returns the delay of the last step, or `undefined`
 * when the schedule ended first.
 *
 * @internal
 */
export const replayDelay = Effect.fnUntraced(function*<Failure>(
  schedule: Schedule.Schedule<unknown, Failure>,
  failure: Failure,
  attempts: number
): Effect.fn.Return<number | undefined> {
  const step = yield* Schedule.toStep(schedule)
  let now = 0
  let delay: number | undefined = undefined
  for (let i = 0; i < attempts; i++) {
    const result = yield* Pull.catchDone(step(now, failure), () => Effect.undefined)
    if (result === undefined) return undefined
    delay = Math.round(Duration.toMillis(result[1]))
    now += delay
  }
  return delay
})

/**
 * Decides what happens after a `Retry.later(delay)`: a retry after exactly `delayMillis`, unless the limit is reached
 * (`maxRetries`, or the end of the schedule). `throws` and `retryWhen` do not apply.
 *
 * @internal
 */
export const decideLater = <Failure>(
  policy: RetryPolicy<Failure>,
  failure: Failure,
  attempts: number,
  delayMillis: number
): Effect.Effect<RetryDecision> => {
  const retry: RetryDecision = { _tag: "Retry", delayMillis }
  if (policy.maxRetries !== undefined) return Effect.succeed(attempts > policy.maxRetries ? GIVE_UP_EXHAUSTED : retry)
  return Effect.map(
    replayDelay(policy.schedule, failure, attempts),
    (delay): RetryDecision => delay === undefined ? GIVE_UP_EXHAUSTED : retry
  )
}

/**
 * Decides what happens after a failed attempt. `attempts` counts failed attempts including this one. One rule: a
 * failure is retried only when its tag is not in `throws`, `retryWhen` (if any) allows it, and the limit
 * (`maxRetries`, or the end of the schedule) is not reached. `retryWhen` never extends the limit.
 *
 * @internal
 */
export const decide = <Failure extends { readonly _tag: string }>(
  policy: RetryPolicy<Failure>,
  failure: Failure,
  attempts: number
): Effect.Effect<RetryDecision> => {
  if (policy.throws.has(failure._tag)) return Effect.succeed(GIVE_UP_THROWS)
  if (policy.retryWhen !== undefined && !policy.retryWhen(failure, attempts)) {
    return Effect.succeed(GIVE_UP_RETRY_WHEN)
  }
  if (policy.maxRetries !== undefined && attempts > policy.maxRetries) return Effect.succeed(GIVE_UP_EXHAUSTED)
  return Effect.map(
    replayDelay(policy.schedule, failure, attempts),
    (delay): RetryDecision => delay === undefined ? GIVE_UP_EXHAUSTED : { _tag: "Retry", delayMillis: delay }
  )
}
