/**
 * Per-message options (Dramatiq's `send_with_options`) and explicit retries (`Retry.later`).
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Clock, Effect, Layer, Logger, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Retry, Worker } from "../src/index.ts"

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", {}) {}

const Job = Schema.Struct({ n: Schema.Number })

/** Records the virtual time of each run, then runs `then`. */
const timed = <A, E>(log: Ref.Ref<ReadonlyArray<number>>, then: Effect.Effect<A, E>) =>
  Effect.andThen(Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(log, (all) => [...all, now])), then)

const withWorker =
  <const Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>>(handlers: Handlers) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(Effect.provide(Worker.layer({ handlers }).pipe(Layer.provideMerge(MemoryBroker.layer))))

describe("per-message options", () => {
  const confirm = Actor.make("confirm", {
    queue: "opts",
    payload: Job,
    error: Flaky,
    maxRetries: 10,
    minBackoff: "1 minute",
    maxBackoff: "1 minute",
    timeLimit: "1 hour"
  })

  it.effect("maxRetries, minBackoff and maxBackoff of one message override the actor's", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<number>>([])
      const handler = confirm.handle(() => timed(runs, Effect.fail(new Flaky())))
      yield* Effect.gen(function*() {
        yield* confirm.send({ n: 1 }, { maxRetries: 2, minBackoff: "1 second", maxBackoff: "1 second" })
        yield* TestClock.adjust("1 hour")
        const times = yield* Ref.get(runs)
        assert.strictEqual(times.length, 3) // 1 run + 2 retries, not 11
        // backoff clamped to [1 s, 1 s] (jitter stays within the bounds)
        assert.deepStrictEqual(times.slice(1).map((time, i) => time - times[i]!), [1_000, 1_000])
        const [letter] = yield* MemoryBroker.deadLetters("opts")
        assert.strictEqual(letter?.attempts, 3)
      }).pipe(withWorker([handler]))
    }))

  it.effect("timeLimit and maxAge of one message override the actor's", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<number>>([])
      const handler = confirm.handle(({ n }) => timed(runs, n === 1 ? Effect.never : Effect.void))
      yield* Effect.gen(function*() {
        // a 1 s time limit instead of 1 h: interrupted, no retries left
        yield* confirm.send({ n: 1 }, { timeLimit: "1 second", maxRetries: 0 })
        yield* TestClock.adjust("2 seconds")
        const [timedOut] = yield* MemoryBroker.deadLetters("opts")
        assert.strictEqual(timedOut?.reason.tag, "TimeLimitExceeded")
        assert.include(timedOut?.reason.message, "1000 ms")
      }).pipe(withWorker([handler]))
    }))

  it.effect("a message past its own maxAge is dead-lettered unrun", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<number>>([])
      const handler = confirm.handle(() => timed(runs, Effect.void))
      yield* confirm.send({ n: 2 }, { maxAge: "1 minute" })
      yield* TestClock.adjust("2 minutes")
      yield* Effect.gen(function*() {
        const [letter] = yield* MemoryBroker.join("opts")
        assert.strictEqual(letter?.reason.tag, "MaxAgeExceeded")
        assert.deepStrictEqual(yield* Ref.get(runs), [])
      }).pipe(Effect.provide(Worker.layer({ handlers: [handler] })))
    }).pipe(Effect.provide(MemoryBroker.layer)))

  it.effect("per-message options are validated like the actor's, and nothing is sent", () =>
    Effect.gen(function*() {
      for (
        const [option, options] of [
          ["maxRetries", { maxRetries: -1 }],
          ["maxRetries", { maxRetries: Infinity }],
          ["minBackoff", { minBackoff: "5 bogus" }],
          ["maxBackoff", { minBackoff: "1 hour", maxBackoff: "1 second" }],
          ["timeLimit", { timeLimit: 0 }],
          ["maxAge", { maxAge: Infinity }]
        ] as const
      ) {
        const error = yield* Effect.flip(confirm.send({ n: 1 }, options as Actor.SendOptions))
        assert(error._tag === "InvalidOption")
        assert.deepStrictEqual([error.of, error.option], ["send", option])
      }
      assert.strictEqual(yield* MemoryBroker.size("opts"), 0)
    }).pipe(Effect.provide(MemoryBroker.layer)))

  it.effect("a message without overrides carries none in its envelope", () =>
    Effect.gen(function*() {
      const plain = yield* confirm.message({ n: 1 })
      const tuned = yield* confirm.message({ n: 1 }, { maxRetries: 1, timeLimit: "5 seconds" })
      assert.strictEqual(plain.limits, undefined)
      assert.deepStrictEqual(tuned.limits, { maxRetries: 1, timeLimit: 5_000 })
    }))
})

describe("Retry.later", () => {
  it.effect("runs the message again after exactly the delay, counts it against maxRetries, logs it at Info", () => {
    const poll = Actor.make("poll_export", { queue: "later", payload: Job, maxRetries: 2 })
    return Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<number>>([])
      const handler = poll.handle(() => timed(runs, Retry.later("30 seconds")))
      const levels: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        const text = String(Array.isArray(message) ? message[0] : message)
        if (text.startsWith("Retrying later") || text.startsWith("Failed")) levels.push(logLevel)
      })
      yield* Effect.gen(function*() {
        yield* poll.send({ n: 1 })
        yield* TestClock.adjust("5 minutes")
        const times = yield* Ref.get(runs)
        assert.deepStrictEqual(times.slice(1).map((time, i) => time - times[i]!), [30_000, 30_000])
        const [letter] = yield* MemoryBroker.deadLetters("later")
        assert.strictEqual(letter?.reason.tag, "RetryLater")
        assert.strictEqual(letter?.attempts, 3)
        assert.deepStrictEqual(levels, ["Info", "Info"])
      }).pipe(withWorker([handler]), Effect.provide(Logger.layer([capture])))
    })
  })

  it.effect("a malformed delay fails the attempt as a defect naming the option, never clamped", () => {
    const poll = Actor.make("poll_bad_delay", { queue: "later3", payload: Job, maxRetries: 0 })
    return Effect.gen(function*() {
      const handler = poll.handle(() => Retry.later(-5))
      yield* Effect.gen(function*() {
        yield* poll.send({ n: 1 })
        const [letter] = yield* MemoryBroker.join("later3")
        assert.strictEqual(letter?.reason.tag, "HandlerDefect")
        assert.include(letter?.reason.message, "delay")
      }).pipe(withWorker([handler]))
    })
  })

  it.effect("is not subject to retryWhen or throws, and may succeed later", () => {
    const poll = Actor.make("poll_ready", {
      queue: "later2",
      payload: Job,
      success: Schema.String,
      retryWhen: () => false
    })
    return Effect.gen(function*() {
      const runs = yield* Ref.make<ReadonlyArray<number>>([])
      const handler = poll.handle(() =>
        Effect.flatMap(
          Ref.updateAndGet(runs, (all) => [...all, 0]),
          (all) => all.length < 3 ? Retry.later("1 second") : Effect.succeed("ready")
        )
      )
      yield* Effect.gen(function*() {
        yield* poll.send({ n: 1 })
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual((yield* Ref.get(runs)).length, 3)
        assert.deepStrictEqual(yield* MemoryBroker.stats("later2"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }).pipe(withWorker([handler]))
    })
  })
})
