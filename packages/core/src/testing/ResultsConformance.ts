/**
 * The results conformance suite: what every `Results` store must do, as `@effect/vitest` tests. A store's package
 * runs it in one line, next to the broker suite:
 *
 * ```ts
 * ResultsConformance.suite("my-broker", MyBroker.layer)
 * ```
 *
 * It runs on `TestClock`: a store reads time from Effect's `Clock` for expiry, and its waits are woken by writes,
 * not by time.
 *
 * @since 0.2.0
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, type Layer } from "effect"
import { TestClock } from "effect/testing"
import { randomUUID } from "node:crypto"
import { Results, type Stored } from "../Results.ts"

/** Lets 10 ms of real time pass (for a store's real I/O), whatever the clock. */
const realPause = Effect.callback<void>((resume) => {
  const timer = setTimeout(() => resume(Effect.void), 10)
  return Effect.sync(() => clearTimeout(timer))
})

/**
 * Registers the results conformance suite for a layer that provides `Results`.
 *
 * @category testing
 * @since 0.2.0
 */
export const suite = (name: string, resultsLayer: Layer.Layer<Results, unknown>): void => {
  layer(resultsLayer)(`${name} results conformance`, (it) => {
    const id = () => `result-${randomUUID()}`
    const success = (value: unknown): Stored => ({ _tag: "Success", value })

    describe("put and get", () => {
      it.effect("has nothing for a message before its result is written", () =>
        Effect.gen(function*() {
          const results = yield* Results
          assert.strictEqual(yield* results.get(id()), undefined)
        }))

      it.effect("reads back each kind of outcome exactly, and a second write replaces the first", () =>
        Effect.gen(function*() {
          const results = yield* Results
          const [a, b, c] = [id(), id(), id()]
          yield* results.put(a, success({ total: 12.5, lines: ["x"], none: null }), "1 minute")
          yield* results.put(b, { _tag: "Failure", error: { _tag: "UserNotFound", userId: 7 } }, "1 minute")
          yield* results.put(c, { _tag: "Died", tag: "TimeLimitExceeded", message: "too slow" }, "1 minute")
          assert.deepStrictEqual(yield* results.get(a), success({ total: 12.5, lines: ["x"], none: null }))
          assert.deepStrictEqual(yield* results.get(b), { _tag: "Failure", error: { _tag: "UserNotFound", userId: 7 } })
          assert.deepStrictEqual(yield* results.get(c), { _tag: "Died", tag: "TimeLimitExceeded", message: "too slow" })
          yield* results.put(a, success("again"), "1 minute")
          assert.deepStrictEqual(yield* results.get(a), success("again"))
        }))

      it.effect("forgets a result once its TTL passed, by Clock", () =>
        Effect.gen(function*() {
          const results = yield* Results
          const key = id()
          yield* results.put(key, success(1), "10 seconds")
          yield* TestClock.adjust("9999 millis")
          assert.deepStrictEqual(yield* results.get(key), success(1))
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(yield* results.get(key), undefined)
        }))
    })

    describe("await", () => {
      it.effect("returns a result that is already there at once", () =>
        Effect.gen(function*() {
          const results = yield* Results
          const key = id()
          yield* results.put(key, success("ready"), "1 minute")
          assert.deepStrictEqual(yield* results.await(key, "1 second"), success("ready"))
        }))

      it.effect("is woken by the write, with no time passing: every waiter of the message", () =>
        Effect.gen(function*() {
          const results = yield* Results
          const key = id()
          const first = yield* Effect.forkChild(results.await(key, "1 hour"))
          const second = yield* Effect.forkChild(results.await(key, "1 hour"))
          const other = yield* Effect.forkChild(results.await(id(), "1 hour"))
          yield* Effect.yieldNow
          yield* results.put(key, success("done"), "1 minute")
          assert.deepStrictEqual(yield* Fiber.join(first), success("done"))
          assert.deepStrictEqual(yield* Fiber.join(second), success("done"))
          // a waiter of another message is not woken
          assert.isUndefined(other.pollUnsafe())
          yield* Fiber.interrupt(other)
        }))

      it.effect("gives up with undefined when the timeout passes first", () =>
        Effect.gen(function*() {
          const results = yield* Results
          const waiting = yield* Effect.forkChild(results.await(id(), "5 seconds"))
          // A store may do real I/O (read, subscribe, read) before its timer starts: move the clock until the wait
          // ends, letting real time pass between steps (bounded: 200 steps of 10 ms).
          for (let step = 0; step < 200 && waiting.pollUnsafe() === undefined; step++) {
            yield* TestClock.adjust("5 seconds")
            yield* realPause
          }
          assert.strictEqual(yield* Fiber.join(waiting), undefined)
        }))

      it.effect("an interrupted waiter leaves the others working", () =>
        Effect.gen(function*() {
          const results = yield* Results
          const key = id()
          const interrupted = yield* Effect.forkChild(results.await(key, "1 hour"))
          const kept = yield* Effect.forkChild(results.await(key, "1 hour"))
          yield* Effect.yieldNow
          yield* Fiber.interrupt(interrupted)
          yield* results.put(key, success(42), "1 minute")
          assert.deepStrictEqual(yield* Fiber.join(kept), success(42))
        }))
    })
  })
}
