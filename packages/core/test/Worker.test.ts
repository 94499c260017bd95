import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Logger, Ref, References, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Broker, ErrandError, Worker } from "../src/index.ts"

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", { reason: Schema.String }) {}
class Invalid extends Schema.TaggedError<Invalid>()("Invalid", { field: Schema.String }) {}

const Job = Schema.Struct({ n: Schema.Number })

/** Runs `self` with a worker for `options` over a fresh memory broker. */
const withWorker = <const Handlers extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>>(
  options: Worker.Options<Handlers>
) =>
<A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(Worker.layer(options).pipe(Layer.provideMerge(MemoryBroker.layer))))

/** Records the virtual time of each run. */
const runLog = Ref.make<ReadonlyArray<number>>([])
const record = (log: Ref.Ref<ReadonlyArray<number>>) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(log, (all) => [...all, now]))

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

describe("Worker", () => {
  it.effect("runs a sent message and acks it", () => {
    const greet = Actor.make("greet", { queue: "q", payload: Job, success: Schema.Number })
    return Effect.gen(function*() {
      const seen = yield* Deferred.make<number>()
      const handler = greet.handle(({ n }) => Effect.as(Deferred.succeed(seen, n), n * 2))
      yield* Effect.gen(function*() {
        yield* greet.send({ n: 21 })
        assert.strictEqual(yield* Deferred.await(seen), 21)
        assert.deepStrictEqual(yield* MemoryBroker.join("q"), [])
        assert.deepStrictEqual(yield* MemoryBroker.stats("q"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }).pipe(withWorker({ handlers: [handler] }))
    })
  })

  it.effect("gives the handler its message, and CurrentMessage to code deep inside it", () => {
    const inspect = Actor.make("inspect", { queue: "q", payload: Job, success: Schema.String })
    return Effect.gen(function*() {
      const seen = yield* Deferred.make<string>()
      const handler = inspect.handle((_, message) =>
        Effect.gen(function*() {
          const current = yield* Worker.CurrentMessage
          yield* Deferred.succeed(seen, `${message.id === current.id}:${current.attempts}:${current.actor}`)
          return "ok"
        })
      )
      yield* Effect.andThen(inspect.send({ n: 1 }), Deferred.await(seen)).pipe(
        Effect.map((value) => assert.strictEqual(value, "true:0:inspect")),
        withWorker({ handlers: [handler] })
      )
    })
  })

  it.effect("annotates a handler's logs with the actor, queue, message id and attempt, keeping outer annotations", () => {
    const chatty = Actor.make("chatty", { queue: "q", payload: Job })
    return Effect.gen(function*() {
      const seen = yield* Deferred.make<Record<string, unknown>>()
      const handler = chatty.handle(() => Effect.log("inside"))
      const capture = Logger.make(({ fiber, message }) => {
        if (Array.isArray(message) && message[0] === "inside") {
          Deferred.doneUnsafe(seen, Exit.succeed({ ...fiber.getRef(References.CurrentLogAnnotations) }))
        }
      })
      yield* Effect.gen(function*() {
        const sent = yield* chatty.send({ n: 1 })
        const annotations = yield* Deferred.await(seen)
        assert.deepStrictEqual(annotations, {
          app: "test",
          module: "Worker",
          actor: "chatty",
          queue: "q",
          messageId: sent.id,
          attempt: 1
        })
      }).pipe(
        withWorker({ handlers: [handler] }),
        Effect.annotateLogs({ app: "test" }),
        Effect.provide(Logger.layer([capture]))
      )
    })
  })

  it.effect("runs up to `concurrency` handlers at once, and every message of a batch with synchronous handlers", () => {
    const slow = Actor.make("slow", { queue: "q", payload: Job })
    return Effect.gen(function*() {
      let running = 0
      let most = 0
      const release = yield* Deferred.make<void>()
      const fourRunning = yield* Deferred.make<void>()
      let done = 0
      const handler = slow.handle(({ n }) =>
        n < 10
          ? Effect.gen(function*() {
            running++
            most = Math.max(most, running)
            if (running === 4) yield* Deferred.succeed(fourRunning, undefined)
            yield* Deferred.await(release)
            running--
            done++
          })
          : Effect.sync(() => {
            done++
          })
      )
      yield* Effect.gen(function*() {
        yield* slow.sendBatch(Array.from({ length: 10 }, (_, n) => ({ n })))
        yield* Deferred.await(fourRunning) // the four runners each took one of the waiting handlers
        assert.strictEqual(most, 4)
        yield* Deferred.succeed(release, undefined)
        yield* slow.sendBatch(Array.from({ length: 50 }, (_, n) => ({ n: 10 + n })))
        assert.deepStrictEqual(yield* MemoryBroker.join("q"), [])
        assert.strictEqual(done, 60)
        assert.strictEqual(most, 4)
      }).pipe(withWorker({ handlers: [handler], concurrency: 4 }))
    })
  })

  it.effect("runs a lower priority number first", () => {
    const ordered = Actor.make("ordered", { queue: "q", payload: Job })
    return Effect.gen(function*() {
      const order = yield* Ref.make<ReadonlyArray<number>>([])
      const handler = ordered.handle(({ n }) => Ref.update(order, (all) => [...all, n]))
      // Given messages waiting before any worker runs
      const messages = [
        yield* ordered.message({ n: 3 }, { priority: 3 }),
        yield* ordered.message({ n: 1 }, { priority: 1 }),
        yield* ordered.message({ n: 2 }, { priority: 2 }),
        yield* ordered.message({ n: 0 }, { priority: 0 })
      ]
      yield* Effect.gen(function*() {
        yield* Actor.enqueue(messages)
        // When a worker with one slot starts
        const scope = yield* Scope.make()
        yield* Worker.make({ handlers: [handler], concurrency: 1, prefetch: 0 }).pipe(Scope.provide(scope))
        yield* MemoryBroker.join("q")
        yield* Scope.close(scope, Exit.void)
        // Then they ran by priority
        assert.deepStrictEqual(yield* Ref.get(order), [0, 1, 2, 3])
      }).pipe(Effect.provide(MemoryBroker.layer))
    })
  })

  it.effect("keeps a delayed message in the broker until it is due", () => {
    const later = Actor.make("later", { queue: "q", payload: Job })
    return Effect.gen(function*() {
      const runs = yield* runLog
      const handler = later.handle(() => record(runs))
      yield* Effect.gen(function*() {
        yield* later.send({ n: 1 }, { delay: "10 minutes" })
        yield* TestClock.adjust("9 minutes")
        assert.deepStrictEqual(yield* Ref.get(runs), [])
        assert.strictEqual((yield* MemoryBroker.stats("q")).delayed, 1)
        yield* TestClock.adjust("1 minute")
        assert.deepStrictEqual(yield* Ref.get(runs), [600_000])
      }).pipe(withWorker({ handlers: [handler] }))
    })
  })

  describe("retries", () => {
    it.effect("retries with Dramatiq's backoff, then dead-letters with the attempts and the last error", () => {
      const confirm = Actor.make("send_order_confirmation", {
        queue: "email",
        payload: Job,
        error: Flaky,
        maxRetries: 3,
        minBackoff: "15 seconds",
        maxBackoff: "1 hour"
      })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = confirm.handle(() =>
          Effect.andThen(record(runs), Effect.fail(new Flaky({ reason: "smtp down" })))
        )
        yield* Effect.gen(function*() {
          yield* confirm.send({ n: 1 })
          yield* TestClock.adjust("2 hours") // every backoff elapses instantly

          const times = yield* Ref.get(runs)
          assert.strictEqual(times.length, 4) // 1 run + 3 retries
          const [first, second, third] = gaps(times)
          assert.isTrue(first! >= 15_000 && first! <= 18_000, `first backoff ${first}`)
          assert.isTrue(second! >= 24_000 && second! <= 36_000, `second backoff ${second}`)
          assert.isTrue(third! >= 48_000 && third! <= 72_000, `third backoff ${third}`)

          const dead = yield* MemoryBroker.deadLetters("email")
          assert.strictEqual(dead.length, 1)
          assert.deepStrictEqual(dead[0]!.reason, { tag: "Flaky", message: `{"reason":"smtp down"}` })
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })

    it.effect("follows a custom Schedule, and stops when it ends", () => {
      const custom = Actor.make("custom", {
        queue: "q",
        payload: Job,
        error: Flaky,
        retry: Schedule.exponential("1 second", 3).pipe(Schedule.upTo({ times: 3 }))
      })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = custom.handle(() => Effect.andThen(record(runs), Effect.fail(new Flaky({ reason: "x" }))))
        yield* Effect.gen(function*() {
          yield* custom.send({ n: 1 })
          yield* TestClock.adjust("1 minute")
          assert.deepStrictEqual(gaps(yield* Ref.get(runs)), [1_000, 3_000, 9_000])
          assert.strictEqual((yield* MemoryBroker.deadLetters("q")).length, 1)
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })

    it.effect("succeeds on a retry and acks", () => {
      const flaky = Actor.make("flaky", { queue: "q", payload: Job, error: Flaky, minBackoff: "1 second" })
      return Effect.gen(function*() {
        const handler = flaky.handle((_, message) =>
          message.attempts < 2 ? Effect.fail(new Flaky({ reason: `attempt ${message.attempts}` })) : Effect.void
        )
        const lastErrors = yield* Ref.make<ReadonlyArray<string | undefined>>([])
        yield* Effect.gen(function*() {
          yield* flaky.send({ n: 1 })
          yield* TestClock.adjust("1 minute")
          assert.deepStrictEqual(yield* MemoryBroker.stats("q"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
          assert.deepStrictEqual(yield* Ref.get(lastErrors), [
            undefined,
            `{"reason":"attempt 0"}`,
            `{"reason":"attempt 1"}`
          ])
        }).pipe(withWorker({
          handlers: [handler],
          onEvent: (event) =>
            event._tag === "Started"
              ? Ref.update(lastErrors, (all) => [...all, event.message.lastError?.message])
              : Effect.void
        }))
      })
    })

    it.effect("never retries an error listed in throws", () => {
      const input = Actor.make("process_user_input", {
        queue: "q",
        payload: Job,
        error: Schema.Union([Invalid, Flaky]),
        throws: ["Invalid"]
      })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = input.handle(() => Effect.andThen(record(runs), Effect.fail(new Invalid({ field: "input" }))))
        yield* Effect.gen(function*() {
          yield* input.send({ n: 1 })
          yield* TestClock.adjust("1 hour")
          assert.strictEqual((yield* Ref.get(runs)).length, 1)
          const dead = yield* MemoryBroker.deadLetters("q")
          assert.strictEqual(dead[0]!.reason.tag, "Invalid")
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })

    it.effect("stops retrying when retryWhen says so", () => {
      const guarded = Actor.make("guarded", {
        queue: "q",
        payload: Job,
        error: Flaky,
        minBackoff: "1 second",
        retryWhen: (_failure, attempts) => attempts < 2
      })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = guarded.handle(() => Effect.andThen(record(runs), Effect.fail(new Flaky({ reason: "x" }))))
        yield* Effect.gen(function*() {
          yield* guarded.send({ n: 1 })
          yield* TestClock.adjust("1 hour")
          assert.strictEqual((yield* Ref.get(runs)).length, 2)
          assert.strictEqual((yield* MemoryBroker.deadLetters("q")).length, 1)
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })

    it.effect("retries a defect like a failure", () => {
      const buggy = Actor.make("buggy", { queue: "q", payload: Job, maxRetries: 1, minBackoff: "1 second" })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = buggy.handle(() => Effect.andThen(record(runs), Effect.die(new Error("boom"))))
        yield* Effect.gen(function*() {
          yield* buggy.send({ n: 1 })
          yield* TestClock.adjust("1 minute")
          assert.strictEqual((yield* Ref.get(runs)).length, 2)
          const dead = yield* MemoryBroker.deadLetters("q")
          assert.strictEqual(dead[0]!.reason.tag, "HandlerDefect")
          assert.include(dead[0]!.reason.message, "boom")
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })
  })

  describe("time limits and age limits", () => {
    it.effect("interrupts a hung handler at its time limit, retries it, then dead-letters it", () => {
      const hangs = Actor.make("hangs", {
        queue: "q",
        payload: Job,
        timeLimit: "1 minute",
        maxRetries: 1,
        minBackoff: "10 seconds"
      })
      return Effect.gen(function*() {
        const interrupted = yield* Ref.make(0)
        const handler = hangs.handle(() =>
          Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
        )
        yield* Effect.gen(function*() {
          yield* hangs.send({ n: 1 })
          yield* TestClock.adjust("59 seconds")
          assert.strictEqual(yield* Ref.get(interrupted), 0)
          yield* TestClock.adjust("1 second")
          assert.strictEqual(yield* Ref.get(interrupted), 1) // the handler's fiber really was interrupted
          assert.strictEqual((yield* MemoryBroker.stats("q")).delayed, 1) // and the attempt failed: retry scheduled
          yield* TestClock.adjust("2 minutes")
          assert.strictEqual(yield* Ref.get(interrupted), 2)
          const dead = yield* MemoryBroker.deadLetters("q")
          assert.strictEqual(dead.length, 1)
          assert.strictEqual(dead[0]!.reason.tag, "TimeLimitExceeded")
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })

    it.effect("dead-letters a message past its max age without running it", () => {
      const fresh = Actor.make("fresh_only", { queue: "q", payload: Job, maxAge: "1 hour" })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = fresh.handle(() => record(runs))
        yield* Effect.gen(function*() {
          // Given a message that waits two hours with no worker running
          yield* fresh.send({ n: 1 })
          yield* TestClock.adjust("2 hours")
          // When a worker starts
          const scope = yield* Scope.make()
          yield* Worker.make({ handlers: [handler] }).pipe(Scope.provide(scope))
          yield* MemoryBroker.join("q")
          yield* Scope.close(scope, Exit.void)
          // Then it is dead-lettered unrun
          assert.deepStrictEqual(yield* Ref.get(runs), [])
          const dead = yield* MemoryBroker.deadLetters("q")
          assert.strictEqual(dead[0]!.reason.tag, "MaxAgeExceeded")
        }).pipe(Effect.provide(MemoryBroker.layer))
      })
    })

    it.effect("does not age out a message by its delay", () => {
      const fresh = Actor.make("fresh_only", { queue: "q", payload: Job, maxAge: "1 hour" })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = fresh.handle(() => record(runs))
        yield* Effect.gen(function*() {
          yield* fresh.send({ n: 1 }, { delay: "3 hours" })
          yield* TestClock.adjust("3 hours")
          assert.deepStrictEqual(yield* Ref.get(runs), [3 * 3_600_000])
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })
  })

  describe("bad input", () => {
    it.effect("dead-letters undecodable messages with the reason and keeps processing the others", () => {
      const good = Actor.make("good", { queue: "q", payload: Job })
      return Effect.gen(function*() {
        const runs = yield* Ref.make<ReadonlyArray<number>>([])
        const handler = good.handle(({ n }) => Ref.update(runs, (all) => [...all, n]))
        yield* Effect.gen(function*() {
          const broker = yield* Broker.Broker
          const raw = (id: string, body: unknown): Broker.Outgoing => ({ id, queue: "q", priority: 0, eta: 0, body })
          yield* good.send({ n: 1 })
          yield* broker.enqueue([
            raw("not-an-envelope", "}{ garbage"),
            raw("missing-fields", { id: "missing-fields", actor: "good" }),
            raw("unknown-actor", { id: "unknown-actor", actor: "nobody", queue: "q", payload: {}, enqueuedAt: 0 }),
            raw("bad-payload", { id: "bad-payload", actor: "good", queue: "q", payload: { n: "one" }, enqueuedAt: 0 })
          ])
          yield* good.send({ n: 2 })
          const dead = yield* MemoryBroker.join("q")

          assert.deepStrictEqual(yield* Ref.get(runs), [1, 2])
          const reasons = Object.fromEntries(dead.map((letter) => [letter.id, letter.reason]))
          assert.strictEqual(reasons["not-an-envelope"]!.tag, "MessageDecodeError")
          assert.strictEqual(reasons["missing-fields"]!.tag, "MessageDecodeError")
          assert.include(reasons["missing-fields"]!.message, "queue")
          assert.strictEqual(reasons["unknown-actor"]!.tag, "UnknownActor")
          assert.include(reasons["unknown-actor"]!.message, "nobody")
          assert.strictEqual(reasons["bad-payload"]!.tag, "MessageDecodeError")
          assert.include(reasons["bad-payload"]!.message, `"n"`)
        }).pipe(withWorker({ handlers: [handler] }))
      })
    })

    it.effect("rejects an invalid payload at send, and enqueues nothing", () => {
      const typed = Actor.make("typed", { queue: "q", payload: Schema.Struct({ email: Schema.String }) })
      return Effect.gen(function*() {
        const error = yield* Effect.flip(typed.send({ email: 42 } as unknown as { email: string }))
        assert.instanceOf(error, ErrandError.InvalidPayload)
        assert.strictEqual((error as ErrandError.InvalidPayload).path, "email")
        assert.strictEqual(yield* MemoryBroker.size("q"), 0)
      }).pipe(Effect.provide(MemoryBroker.layer))
    })

    it.effect("rejects a batch with one invalid payload as a whole, naming its field", () => {
      const typed = Actor.make("typed_batch", { queue: "q", payload: Schema.Struct({ email: Schema.String }) })
      return Effect.gen(function*() {
        const payloads = [{ email: "a@x" }, { email: 42 } as unknown as { email: string }, { email: "c@x" }]
        const error = yield* Effect.flip(typed.sendBatch(payloads))
        assert.instanceOf(error, ErrandError.InvalidPayload)
        assert.strictEqual((error as ErrandError.InvalidPayload).path, "email")
        assert.strictEqual(yield* MemoryBroker.size("q"), 0)
        assert.strictEqual((yield* typed.sendBatch([{ email: "a@x" }, { email: "b@x" }])).length, 2)
        assert.strictEqual(yield* MemoryBroker.size("q"), 2)
      }).pipe(Effect.provide(MemoryBroker.layer))
    })

    it.effect("refuses two handlers for one actor name", () => {
      const a = Actor.make("same", { payload: Job })
      return Effect.gen(function*() {
        const exit = yield* Effect.exit(
          Layer.build(Worker.layer({ handlers: [a.handle(() => Effect.void), a.handle(() => Effect.void)] }))
        )
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
        assert.strictEqual(error?._tag, "Fail")
        assert.instanceOf(error?._tag === "Fail" ? error.error : undefined, ErrandError.DuplicateActor)
      }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer))
    })
  })

  describe("leases and shutdown", () => {
    it.effect("extends the lease of a long handler, so it runs once", () => {
      const slow = Actor.make("slow", { queue: "q", payload: Job })
      return Effect.gen(function*() {
        const runs = yield* runLog
        const handler = slow.handle(() => Effect.andThen(record(runs), Effect.sleep("2 minutes")))
        yield* Effect.gen(function*() {
          yield* slow.send({ n: 1 })
          yield* TestClock.adjust("5 minutes")
          assert.strictEqual((yield* Ref.get(runs)).length, 1)
          assert.deepStrictEqual(yield* MemoryBroker.stats("q"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
        }).pipe(withWorker({ handlers: [handler], lease: "10 seconds" }))
      })
    })

    it.effect("shuts down gracefully: finishes what it can, releases the rest without burning an attempt", () => {
      const work = Actor.make("work", { queue: "q", payload: Job })
      return Effect.gen(function*() {
        const finished = yield* Ref.make<ReadonlyArray<number>>([])
        const started = yield* Ref.make(0)
        // handler n takes n minutes
        const handler = work.handle(({ n }) =>
          Effect.andThen(
            Ref.update(started, (count) => count + 1),
            Effect.andThen(Effect.sleep(`${n} minutes`), Ref.update(finished, (all) => [...all, n]))
          )
        )
        yield* Effect.gen(function*() {
          yield* work.sendBatch([1, 10, 3, 4, 5, 6].map((n) => ({ n })))
          const scope = yield* Scope.make()
          yield* Worker.make({ handlers: [handler], concurrency: 2, prefetch: 2, shutdownTimeout: "2 minutes" }).pipe(
            Scope.provide(scope)
          )
          yield* TestClock.adjust("30 seconds") // 1 and 10 are running, 3 and 4 prefetched

          // When the worker is stopped, with a 2-minute shutdown timeout
          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          yield* TestClock.adjust("3 minutes")
          yield* Fiber.join(closing)

          // Then the 1-minute job finished, the 10-minute one was interrupted and released, and nothing else started
          assert.deepStrictEqual(yield* Ref.get(finished), [1])
          assert.strictEqual(yield* Ref.get(started), 2)
          assert.deepStrictEqual(yield* MemoryBroker.stats("q"), { ready: 5, delayed: 0, inFlight: 0, dead: 0 })

          // And a new worker runs all five, each on its first attempt
          const attempts = yield* Ref.make<ReadonlyArray<number>>([])
          const again = work.handle((_, message) => Ref.update(attempts, (all) => [...all, message.attempts]))
          const second = yield* Scope.make()
          yield* Worker.make({ handlers: [again] }).pipe(Scope.provide(second))
          yield* MemoryBroker.join("q")
          yield* Scope.close(second, Exit.void)
          assert.deepStrictEqual(yield* Ref.get(attempts), [0, 0, 0, 0, 0])
        }).pipe(Effect.provide(MemoryBroker.layer))
      })
    })
  })
})
