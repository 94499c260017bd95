/**
 * The in-memory results store (`Results` of `@errand/core`), provided by `MemoryBroker.layer`: results live in the
 * process until their TTL passes (by Effect's `Clock`, so `TestClock` expires them), and a waiting reader is resumed by
 * the write itself.
 *
 * Expired results are dropped when read, and in a sweep every 1,000 writes, so what is kept stays bounded by the
 * results written within a TTL.
 *
 * @since 0.2.0
 */
import { Results } from "@errand/core"
import { Clock, Duration, Effect, Layer } from "effect"

interface Entry {
  readonly result: Results.Stored
  readonly expiresAt: number
}

/**
 * Creates an empty in-memory results store.
 *
 * @category constructors
 * @since 0.2.0
 */
export const make: Effect.Effect<Results.Results["Service"]> = Effect.sync(() => {
  const entries = new Map<string, Entry>()
  const waiters = new Map<string, Set<(result: Results.Stored) => void>>()
  let writes = 0

  const sweep = (now: number) => {
    for (const [id, entry] of entries) if (entry.expiresAt <= now) entries.delete(id)
  }

  const read = (messageId: string, now: number): Results.Stored | undefined => {
    const entry = entries.get(messageId)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      entries.delete(messageId)
      return undefined
    }
    return entry.result
  }

  const now = Clock.currentTimeMillis

  return Results.Results.of({
    put: (messageId, result, ttl) =>
      Effect.map(now, (time) => {
        entries.set(messageId, { result, expiresAt: time + Duration.toMillis(Duration.fromInputUnsafe(ttl)) })
        if (++writes % 1000 === 0) sweep(time)
        const waiting = waiters.get(messageId)
        if (waiting !== undefined) {
          waiters.delete(messageId)
          for (const resume of waiting) resume(result)
        }
      }),
    get: (messageId) => Effect.map(now, (time) => read(messageId, time)),
    await: (messageId, timeout) =>
      Effect.flatMap(now, (time) => {
        const stored = read(messageId, time)
        if (stored !== undefined) return Effect.succeed<Results.Stored | undefined>(stored)
        return Effect.callback<Results.Stored | undefined>((resume) => {
          const waiter = (result: Results.Stored) => resume(Effect.succeed(result))
          let waiting = waiters.get(messageId)
          if (waiting === undefined) waiters.set(messageId, waiting = new Set())
          waiting.add(waiter)
          return Effect.sync(() => {
            waiting.delete(waiter)
            if (waiting.size === 0 && waiters.get(messageId) === waiting) waiters.delete(messageId)
          })
        }).pipe(Effect.timeoutOption(timeout), Effect.map((found) => found._tag === "Some" ? found.value : undefined))
      })
  })
})

/**
 * The in-memory results store as a Layer (`MemoryBroker.layer` includes it).
 *
 * @category layers
 * @since 0.2.0
 */
export const layer: Layer.Layer<Results.Results> = Layer.effect(Results.Results, make)
