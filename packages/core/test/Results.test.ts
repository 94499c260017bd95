/**
 * Results: a handler's outcome stored by the worker and read back, typed, by the producer.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Deferred, Effect, Fiber, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Results, Worker } from "../src/index.ts"

class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", { userId: Schema.Number }) {}

const Report = Schema.Struct({ day: Schema.String, total: Schema.Number })

const generateReport = Actor.make("generate_report", {
  queue: "reports",
  payload: Schema.Struct({ day: Schema.String, userId: Schema.Number }),
  success: Report,
  error: UserNotFound,
  throws: ["UserNotFound"],
  timeLimit: "1 minute",
  maxRetries: 0,
  storeResults: true
})

/** The handler: a missing user for id 0, a hang for id -1, a report otherwise (after `gate` opens, if given). */
const handler = (gate?: Deferred.Deferred<void>) =>
  generateReport.handle(({ day, userId }) =>
    Effect.gen(function*() {
      if (gate !== undefined) yield* Deferred.await(gate)
      if (userId === 0) return yield* new UserNotFound({ userId })
      if (userId === -1) return yield* Effect.never
      return { day, total: userId * 10 }
    })
  )

const withWorker = (gate?: Deferred.Deferred<void>) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(Worker.layer({ handlers: [handler(gate)] }).pipe(Layer.provideMerge(MemoryBroker.layer))))

describe("Results", () => {
  it.effect("a result read before the handler finished is missing; after, it is the typed success", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const message = yield* generateReport.send({ day: "mon", userId: 4 })
        const early = yield* Effect.flip(generateReport.result(message))
        assert.strictEqual(early._tag, "ResultMissing")
        yield* Deferred.succeed(gate, undefined)
        yield* MemoryBroker.join("reports")
        assert.deepStrictEqual(yield* generateReport.result(message), { day: "mon", total: 40 })
        // by id, too
        assert.deepStrictEqual(yield* generateReport.result(message.id), { day: "mon", total: 40 })
      }).pipe(withWorker(gate))
    }))

  it.effect("a waiting read is woken by the write", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      yield* Effect.gen(function*() {
        const message = yield* generateReport.send({ day: "tue", userId: 2 })
        const waiting = yield* Effect.forkChild(generateReport.result(message, { timeout: "10 seconds" }))
        yield* Effect.yieldNow
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* Fiber.join(waiting), { day: "tue", total: 20 })
      }).pipe(withWorker(gate))
    }))

  it.effect("a wait that times out fails with ResultTimeout", () =>
    Effect.gen(function*() {
      // a message that will not run within the wait
      const message = yield* generateReport.send({ day: "wed", userId: 3 }, { delay: "1 hour" })
      const waiting = yield* Effect.forkChild(Effect.flip(generateReport.result(message, { timeout: "5 seconds" })))
      yield* Effect.yieldNow // the wait starts its timer
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(waiting)
      assert(error._tag === "ResultTimeout")
      assert.strictEqual(error.timeoutMillis, 5_000)
    }).pipe(withWorker()))

  it.effect("a malformed timeout fails with InvalidOption, not a defect", () =>
    Effect.gen(function*() {
      for (const timeout of [-1, Number.NaN, "5 bogus" as "5 seconds"]) {
        const error = yield* Effect.flip(generateReport.result("some-id", { timeout }))
        assert(error._tag === "InvalidOption")
        assert.deepStrictEqual([error.of, error.option], ["result", "timeout"])
      }
    }).pipe(withWorker()))

  it.effect("the final failure is stored: the typed error, or why the message died", () =>
    Effect.gen(function*() {
      const missing = yield* generateReport.send({ day: "thu", userId: 0 })
      const hung = yield* generateReport.send({ day: "thu", userId: -1 })
      yield* TestClock.adjust("2 minutes")
      const typed = yield* Effect.flip(generateReport.result(missing))
      assert.instanceOf(typed, UserNotFound)
      assert.strictEqual((typed as UserNotFound).userId, 0)
      const died = yield* Effect.flip(generateReport.result(hung))
      assert(died._tag === "MessageFailed")
      assert.strictEqual(died.tag, "TimeLimitExceeded")
    }).pipe(withWorker()))

  it.effect("results expire after their TTL", () =>
    Effect.gen(function*() {
      const message = yield* generateReport.send({ day: "fri", userId: 1 })
      yield* MemoryBroker.join("reports")
      yield* TestClock.adjust("9 minutes")
      assert.deepStrictEqual(yield* generateReport.result(message), { day: "fri", total: 10 })
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* Effect.flip(generateReport.result(message)))._tag, "ResultMissing")
    }).pipe(withWorker()))

  it.effect("a result that does not match the success schema fails the attempt, like any error", () => {
    const sloppy = Actor.make("sloppy", {
      queue: "sloppy",
      payload: Schema.Void,
      success: Schema.Number,
      maxRetries: 0,
      storeResults: true
    })
    // a value that escaped the type system
    const handler = sloppy.handle(() => Effect.succeed("not a number" as unknown as number))
    return Effect.gen(function*() {
      const message = yield* sloppy.send(undefined)
      const [letter] = yield* MemoryBroker.join("sloppy")
      assert.strictEqual(letter?.reason.tag, "HandlerDefect")
      assert.include(letter?.reason.message, "success schema")
      const error = yield* Effect.flip(sloppy.result(message))
      assert(error._tag === "MessageFailed")
      assert.strictEqual(error.tag, "HandlerDefect")
    }).pipe(Effect.provide(Worker.layer({ handlers: [handler] }).pipe(Layer.provideMerge(MemoryBroker.layer))))
  })

  it.effect("nothing is stored for an actor that does not ask", () => {
    const plain = Actor.make("plain", { queue: "plain", payload: Schema.Void, success: Schema.Number })
    return Effect.gen(function*() {
      const message = yield* plain.send(undefined)
      yield* MemoryBroker.join("plain")
      const results = yield* Results.Results
      assert.strictEqual(yield* results.get(message.id), undefined)
    }).pipe(
      Effect.provide(
        Worker.layer({ handlers: [plain.handle(() => Effect.succeed(1))] }).pipe(Layer.provideMerge(MemoryBroker.layer))
      )
    )
  })
})
