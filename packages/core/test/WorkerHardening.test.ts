/**
 * The worker under faults: a broker that fails at once (as a Redis client does while disconnected), handlers that
 * ignore interruption or keep losing their lease, and options out of range.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, Ref, References, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Broker, ErrandError, Worker } from "../src/index.ts"

const Job = Schema.Struct({ n: Schema.Number })

type Operation = "take" | "settle" | "extend"

/**
 * A memory broker whose calls fail at once while their operation is in `failing`, as a Redis client does while its
 * connection is down. A take that carries settlements fails while `settle` does.
 */
const flakyBroker = Effect.gen(function*() {
  const memory = yield* MemoryBroker.make
  const failing = new Set<Operation>()
  const calls = { take: 0, settle: 0, extend: 0 }
  const down = (operation: Operation) =>
    Effect.fail(new ErrandError.BrokerError({ broker: "flaky", operation, message: "connection refused" }))
  const broker = Broker.Broker.of({
    ...memory.broker,
    take: (request) => {
      calls.take++
      const settles = (request.settle?.length ?? 0) > 0
      return failing.has("take") || (settles && failing.has("settle")) ? down("take") : memory.broker.take(request)
    },
    settle: (settlements) => {
      calls.settle++
      return failing.has("settle") ? down("settle") : memory.broker.settle(settlements)
    },
    extend: (deliveries, lease) => {
      calls.extend++
      return failing.has("extend") ? down("extend") : memory.broker.extend(deliveries, lease)
    }
  })
  /** Provides the flaky broker as `Broker`, and the memory broker under it for inspection. */
  const provide = <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(
      Effect.provideService(Broker.Broker, broker),
      Effect.provideService(MemoryBroker.MemoryBroker, memory)
    )
  return { memory, failing, calls, provide }
})

/** Resolves after a real `setTimeout` of `millis`, with how late it fired: a starved event loop never fires it. */
const realTimer = (millis: number) =>
  Effect.callback<number>((resume) => {
    const start = Date.now()
    const timer = setTimeout(() => resume(Effect.succeed(Date.now() - start - millis)), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/** Polls a condition every 10 ms of real time (for live tests that watch a worker from outside). */
const eventually = (condition: () => boolean) =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail("not yet")).pipe(
    Effect.retry(Schedule.spaced("10 millis"))
  )

describe("Worker hardening", () => {
  describe("a broker that fails at once", () => {
    // Live clock: the defect these guard against is a retry loop that starves Node's event loop, which only real
    // timers can show. Before the fix, settle was called tens of thousands of times a second and no timer fired.
    it.live("while settle fails: timers fire, calls back off, and everything settles once it is back", () => {
      const job = Actor.make("hardening_settle", { queue: "hs", payload: Job })
      return Effect.gen(function*() {
        const flaky = yield* flakyBroker
        const runs = new Map<number, number>()
        // handlers that finish while the take loop blocks on an empty queue: their outcomes go by `settle` alone
        const handler = job.handle(({ n }) =>
          Effect.andThen(Effect.sleep("20 millis"), Effect.sync(() => runs.set(n, (runs.get(n) ?? 0) + 1)))
        )
        yield* Effect.gen(function*() {
          yield* Worker.make({ handlers: [handler], concurrency: 4 })
          flaky.failing.add("settle")
          yield* job.sendBatch(Array.from({ length: 4 }, (_, n) => ({ n })))
          yield* eventually(() => runs.size >= 1)
          const before = flaky.calls.settle + flaky.calls.take
          // a real outage of half a second, during which a real timer must fire
          const late = yield* Effect.all([realTimer(20), Effect.sleep("500 millis")], { concurrency: 2 })
          // generous: a starved loop never fires it at all; an idle one fires it within a few ms
          assert.isBelow(late[0], 400)
          const during = flaky.calls.settle + flaky.calls.take - before
          // backoff from 50 ms doubling: about 4 calls per queue in 500 ms; a spinning loop makes thousands
          assert.isBelow(during, 40, `broker calls during the outage: ${during}`)
          flaky.failing.delete("settle")
          yield* MemoryBroker.join("hs")
          assert.strictEqual(runs.size, 4)
          assert.deepStrictEqual(yield* MemoryBroker.stats("hs"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
        }).pipe(Effect.scoped, flaky.provide)
      })
    })

    it.live("while take fails: calls back off, and the queue drains once it is back", () => {
      const job = Actor.make("hardening_take", { queue: "ht", payload: Job })
      return Effect.gen(function*() {
        const flaky = yield* flakyBroker
        const runs = yield* Ref.make(0)
        const handler = job.handle(() => Ref.update(runs, (n) => n + 1))
        yield* Effect.gen(function*() {
          flaky.failing.add("take")
          yield* Worker.make({ handlers: [handler], idleWait: "50 millis" })
          yield* job.sendBatch([{ n: 1 }, { n: 2 }, { n: 3 }])
          const late = yield* Effect.all([realTimer(20), Effect.sleep("500 millis")], { concurrency: 2 })
          assert.isBelow(late[0], 400)
          assert.isBelow(flaky.calls.take, 20, `takes during the outage: ${flaky.calls.take}`)
          assert.strictEqual(yield* Ref.get(runs), 0)
          flaky.failing.delete("take")
          yield* MemoryBroker.join("ht")
          assert.strictEqual(yield* Ref.get(runs), 3)
        }).pipe(Effect.scoped, flaky.provide)
      })
    })

    it.live("while extend fails: a running handler goes on, and its message settles once when it is back", () => {
      const job = Actor.make("hardening_extend", { queue: "he", payload: Job })
      return Effect.gen(function*() {
        const flaky = yield* flakyBroker
        const runs = yield* Ref.make(0)
        const started = yield* Deferred.make<void>()
        const handler = job.handle(() =>
          Effect.andThen(
            Deferred.succeed(started, undefined),
            Effect.andThen(Effect.sleep("900 millis"), Ref.update(runs, (n) => n + 1))
          )
        )
        yield* Effect.gen(function*() {
          // a 1 s lease is extended every 333 ms: the outage of 400 ms fails one or two extensions, not the lease
          yield* Worker.make({ handlers: [handler], lease: "1 second" })
          yield* job.send({ n: 1 })
          yield* Deferred.await(started)
          flaky.failing.add("extend")
          yield* Effect.sleep("400 millis")
          flaky.failing.delete("extend")
          yield* MemoryBroker.join("he")
          assert.strictEqual(yield* Ref.get(runs), 1)
          assert.isAtLeast(flaky.calls.extend, 1)
        }).pipe(Effect.scoped, flaky.provide)
      })
    })

    it.effect("stops within shutdownTimeout + releaseTimeout while the broker is down; the lease brings it back", () => {
      const job = Actor.make("hardening_stop", { queue: "hst", payload: Job })
      return Effect.gen(function*() {
        const flaky = yield* flakyBroker
        const started = yield* Deferred.make<void>()
        const handler = job.handle(() => Effect.andThen(Deferred.succeed(started, undefined), Effect.never))
        yield* Effect.gen(function*() {
          const scope = yield* Scope.make()
          yield* Worker.make({
            handlers: [handler],
            lease: "10 seconds",
            shutdownTimeout: "1 second",
            releaseTimeout: "2 seconds"
          }).pipe(Scope.provide(scope))
          yield* job.send({ n: 1 })
          yield* TestClock.adjust(10)
          yield* Deferred.await(started)
          // When the broker goes down and the worker is told to stop
          flaky.failing.add("take").add("settle").add("extend")
          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          // Then it stops by its deadline (1 s + 2 s), without the release it could not record
          yield* TestClock.adjust("3 seconds")
          assert.isTrue(Exit.isSuccess(yield* Fiber.await(closing)))
          // And once the broker is back, the message comes back when its lease lapses
          flaky.failing.clear()
          assert.deepStrictEqual(yield* MemoryBroker.stats("hst"), { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
          yield* TestClock.adjust("10 seconds")
          assert.deepStrictEqual(yield* MemoryBroker.stats("hst"), { ready: 1, delayed: 0, inFlight: 0, dead: 0 })
        }).pipe(flaky.provide)
      })
    })
  })

  describe("shutdown", () => {
    it.effect("stops by its deadline even when a handler ignores interruption", () => {
      const stubborn = Actor.make("stubborn", { queue: "st", payload: Job })
      return Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const handler = stubborn.handle(() =>
          Effect.andThen(Deferred.succeed(started, undefined), Effect.uninterruptible(Effect.sleep("1 hour")))
        )
        const warnings: Array<string> = []
        const capture = Logger.make(({ logLevel, message }) => {
          if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
        })
        yield* Effect.gen(function*() {
          const scope = yield* Scope.make()
          yield* Worker.make({ handlers: [handler], shutdownTimeout: "1 second", releaseTimeout: "1 second" }).pipe(
            Scope.provide(scope)
          )
          yield* stubborn.send({ n: 1 })
          yield* TestClock.adjust(10)
          yield* Deferred.await(started)
          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          yield* TestClock.adjust("2 seconds")
          // the scope closed after 2 s, while the handler still holds out for an hour
          assert.isTrue(Exit.isSuccess(yield* Fiber.await(closing)))
          assert.isTrue(
            warnings.some((line) => line.includes("1 handler(s) ignored interruption")),
            warnings.join("\n")
          )
        }).pipe(Effect.provide([MemoryBroker.layer, Logger.layer([capture])]))
      })
    })

    it.effect("emits Released for each message it puts back: prefetched ones and interrupted ones", () => {
      const work = Actor.make("released", { queue: "rel", payload: Job })
      return Effect.gen(function*() {
        const events = yield* Ref.make<ReadonlyArray<string>>([])
        const handler = work.handle(() => Effect.never)
        yield* Effect.gen(function*() {
          const sent = yield* work.sendBatch([{ n: 1 }, { n: 2 }, { n: 3 }])
          const scope = yield* Scope.make()
          yield* Worker.make({
            handlers: [handler],
            concurrency: 1,
            prefetch: 2,
            shutdownTimeout: "1 second",
            onEvent: (event) =>
              event._tag === "Released" ? Ref.update(events, (all) => [...all, event.messageId]) : Effect.void
          }).pipe(Scope.provide(scope))
          yield* TestClock.adjust(10)
          const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
          yield* TestClock.adjust("2 seconds")
          yield* Fiber.join(closing)
          assert.sameMembers([...(yield* Ref.get(events))], sent.map((message) => message.id))
          assert.deepStrictEqual(yield* MemoryBroker.stats("rel"), { ready: 3, delayed: 0, inFlight: 0, dead: 0 })
        }).pipe(Effect.provide(MemoryBroker.layer))
      })
    })
  })

  describe("poison messages", () => {
    const poison = Actor.make("poison", { queue: "poison", payload: Job })

    /** Takes the queue's message `times` times and lets each lease lapse, as workers that froze on it would. */
    const loseLease = (times: number) =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        for (let i = 0; i < times; i++) {
          const taken = yield* broker.take({ queue: "poison", max: 1, lease: "1 second" })
          assert.strictEqual(taken.deliveries.length, 1)
          yield* TestClock.adjust("1001 millis")
        }
      })

    it.effect("dead-letters a message after maxLostLeases lost leases, unrun, with DeliveryLimitExceeded", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const handler = poison.handle(() => Ref.update(runs, (n) => n + 1))
        yield* poison.send({ n: 1 })
        yield* loseLease(3)
        const scope = yield* Scope.make()
        yield* Worker.make({ handlers: [handler], maxLostLeases: 2 }).pipe(Scope.provide(scope))
        const [letter] = yield* MemoryBroker.join("poison")
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* Ref.get(runs), 0)
        assert.strictEqual(letter?.reason.tag, "DeliveryLimitExceeded")
        assert.include(letter?.reason.message, "lost its lease 3 times (limit 2)")
        assert.strictEqual(letter?.attempts, 0)
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("runs a message that lost its lease up to maxLostLeases times", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const handler = poison.handle(() => Ref.update(runs, (n) => n + 1))
        yield* poison.send({ n: 1 })
        yield* loseLease(2)
        const scope = yield* Scope.make()
        yield* Worker.make({ handlers: [handler], maxLostLeases: 2 }).pipe(Scope.provide(scope))
        assert.deepStrictEqual(yield* MemoryBroker.join("poison"), [])
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* Ref.get(runs), 1)
      }).pipe(Effect.provide(MemoryBroker.layer)))
  })

  describe("dead letters count handler runs", () => {
    it.effect("a message that ran 3 times and then aged out has 3 attempts", () => {
      const aging = Actor.make("aging", {
        queue: "aging",
        payload: Job,
        error: Schema.String,
        retry: Schedule.spaced("1 hour"),
        maxAge: "150 minutes"
      })
      return Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const handler = aging.handle(() => Effect.andThen(Ref.update(runs, (n) => n + 1), Effect.fail("nope")))
        yield* Effect.gen(function*() {
          yield* aging.send({ n: 1 })
          // runs at 0, 1 h and 2 h; at 3 h it is 3 h past its eta, over its 2.5 h max age
          yield* TestClock.adjust("4 hours")
          assert.strictEqual(yield* Ref.get(runs), 3)
          const [letter] = yield* MemoryBroker.deadLetters("aging")
          assert.strictEqual(letter?.reason.tag, "MaxAgeExceeded")
          assert.strictEqual(letter?.attempts, 3)
        }).pipe(Effect.provide(Worker.layer({ handlers: [handler] }).pipe(Layer.provideMerge(MemoryBroker.layer))))
      })
    })

    it.effect("a message dead-lettered unrun (unknown actor, undecodable) has 0 attempts", () => {
      const known = Actor.make("known", { queue: "unrun", payload: Job })
      return Effect.gen(function*() {
        yield* Effect.gen(function*() {
          const broker = yield* Broker.Broker
          yield* broker.enqueue([
            { id: "garbage", queue: "unrun", priority: 0, eta: 0, body: "}{" },
            {
              id: "stranger",
              queue: "unrun",
              priority: 0,
              eta: 0,
              body: { id: "stranger", actor: "nobody", queue: "unrun", payload: {}, enqueuedAt: 0 }
            }
          ])
          const letters = yield* MemoryBroker.join("unrun")
          assert.deepStrictEqual(letters.map((letter) => [letter.id, letter.attempts]), [["garbage", 0], [
            "stranger",
            0
          ]])
        }).pipe(
          Effect.provide(
            Worker.layer({ handlers: [known.handle(() => Effect.void)] }).pipe(Layer.provideMerge(MemoryBroker.layer))
          )
        )
      })
    })
  })

  describe("retry rule", () => {
    it.effect("retryWhen can stop retries, never extend them: maxRetries still applies", () => {
      const eager = Actor.make("eager", {
        queue: "eager",
        payload: Job,
        error: Schema.String,
        maxRetries: 2,
        minBackoff: "1 second",
        maxBackoff: "1 second",
        retryWhen: () => true
      })
      return Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const handler = eager.handle(() => Effect.andThen(Ref.update(runs, (n) => n + 1), Effect.fail("again")))
        yield* Effect.gen(function*() {
          yield* eager.send({ n: 1 })
          yield* TestClock.adjust("1 hour")
          assert.strictEqual(yield* Ref.get(runs), 3)
          const [letter] = yield* MemoryBroker.deadLetters("eager")
          assert.strictEqual(letter?.attempts, 3)
        }).pipe(Effect.provide(Worker.layer({ handlers: [handler] }).pipe(Layer.provideMerge(MemoryBroker.layer))))
      })
    })
  })

  describe("log levels", () => {
    it.effect("logs a failure the actor throws at Info, an exhausted one at Error, each retry at Warn with its attempt", () => {
      class Expected extends Schema.TaggedError<Expected>()("Expected", {}) {}
      class Unexpected extends Schema.TaggedError<Unexpected>()("Unexpected", {}) {}
      const picky = Actor.make("picky", {
        queue: "levels",
        payload: Job,
        error: Schema.Union([Expected, Unexpected]),
        throws: ["Expected"],
        maxRetries: 1,
        minBackoff: "1 second"
      })
      return Effect.gen(function*() {
        const lines: Array<{ level: string; text: string; attempt: unknown }> = []
        const capture = Logger.make(({ fiber, logLevel, message }) => {
          const text = String(Array.isArray(message) ? message[0] : message)
          const annotations = fiber.getRef(References.CurrentLogAnnotations)
          lines.push({ level: logLevel, text, attempt: annotations["attempt"] })
        })
        const handler = picky.handle(({ n }) => n === 1 ? Effect.fail(new Expected()) : Effect.fail(new Unexpected()))
        yield* Effect.gen(function*() {
          yield* picky.sendBatch([{ n: 1 }, { n: 2 }])
          yield* TestClock.adjust("1 minute")
          const deadLines = lines.filter((line) => line.text.startsWith("Dead-lettered"))
          assert.deepStrictEqual(deadLines.map((line) => [line.level, line.text.split(":")[0]]), [
            ["Info", "Dead-lettered (throws)"],
            ["Error", "Dead-lettered (retries exhausted)"]
          ])
          const retryLine = lines.find((line) => line.text.startsWith("Failed (attempt 1)"))
          assert.strictEqual(retryLine?.level, "Warn")
          assert.strictEqual(retryLine?.attempt, 1)
        }).pipe(
          Effect.provide(Worker.layer({ handlers: [handler] }).pipe(Layer.provideMerge(MemoryBroker.layer))),
          Effect.provide(Logger.layer([capture]))
        )
      })
    })
  })
})

describe("option validation", () => {
  const payload = Job

  it("Actor.make throws InvalidOption naming the option", () => {
    const cases: ReadonlyArray<[string, Partial<Actor.Options<typeof Job, Schema.Void, Schema.Never>>]> = [
      ["priority", { priority: 1.5 }],
      ["priority", { priority: Number.NaN }],
      ["priority", { priority: 2_097_152 }],
      ["maxRetries", { maxRetries: -1 }],
      ["maxRetries", { maxRetries: 2.5 }],
      ["minBackoff", { minBackoff: -1 }],
      ["minBackoff", { minBackoff: Number.NaN }],
      ["maxBackoff", { minBackoff: "1 hour", maxBackoff: "1 minute" }],
      ["maxBackoff", { maxBackoff: Infinity }],
      ["timeLimit", { timeLimit: 0 }],
      ["timeLimit", { timeLimit: "5 bogus" as "5 seconds" }],
      ["maxAge", { maxAge: -5 }],
      ["rateLimit.limit", { rateLimit: { limit: 0, window: "1 second" } }],
      ["rateLimit.limit", { rateLimit: { limit: 2.5, window: "1 second" } }],
      ["rateLimit.window", { rateLimit: { limit: 10, window: "5 bogus" as "5 seconds" } }],
      ["rateLimit.window", { rateLimit: { limit: 10, window: Infinity } }],
      ["concurrency.limit", { concurrency: { limit: -1 } }],
      ["concurrency.limit", { concurrency: { limit: Number.NaN } }]
    ]
    for (const [option, options] of cases) {
      try {
        Actor.make("checked", { payload, ...options })
        assert.fail(`accepted ${JSON.stringify(options)}`)
      } catch (error) {
        assert.instanceOf(error, ErrandError.InvalidOption, JSON.stringify(options))
        assert.strictEqual((error as ErrandError.InvalidOption).option, option, JSON.stringify(options))
        assert.strictEqual((error as ErrandError.InvalidOption).of, "actor")
      }
    }
    // the bounds themselves, Infinity where a limit may be lifted, and negative priorities are accepted
    Actor.make("bounds", { payload, priority: -2_097_151, maxRetries: Infinity, timeLimit: Infinity, maxAge: "1 day" })
  })

  it.effect("send fails with InvalidOption, and enqueues nothing", () => {
    const checked = Actor.make("checked_send", { queue: "checked", payload })
    return Effect.gen(function*() {
      const cases: ReadonlyArray<[string, Actor.SendOptions]> = [
        ["delay", { delay: -1 }],
        ["delay", { delay: Infinity }],
        ["delay", { delay: Number.NaN }],
        ["delay", { delay: "5 bogus" as "5 seconds" }],
        ["priority", { priority: 1.1 }],
        ["priority", { priority: 2_097_152 }],
        ["priority", { priority: Number.NaN }]
      ]
      for (const [option, options] of cases) {
        const error = yield* Effect.flip(checked.send({ n: 1 }, options))
        assert(error._tag === "InvalidOption", JSON.stringify(options))
        assert.deepStrictEqual([error.of, error.option], ["send", option])
        const batchError = yield* Effect.flip(checked.sendBatch([{ n: 1 }], options))
        assert.strictEqual(batchError._tag, "InvalidOption")
      }
      assert.strictEqual(yield* MemoryBroker.size("checked"), 0)
      yield* checked.send({ n: 1 }, { priority: -5, delay: 0 })
      assert.strictEqual(yield* MemoryBroker.size("checked"), 1)
    }).pipe(Effect.provide(MemoryBroker.layer))
  })

  it.effect("Worker.make fails with InvalidOption naming the option", () => {
    const handler = Actor.make("checked_worker", { payload }).handle(() => Effect.void)
    return Effect.gen(function*() {
      const cases: ReadonlyArray<[string, Partial<Worker.Options<ReadonlyArray<typeof handler>>>]> = [
        ["concurrency", { concurrency: 0 }],
        ["concurrency", { concurrency: -1 }],
        ["concurrency", { concurrency: 1.5 }],
        ["concurrency", { concurrency: Number.NaN }],
        ["prefetch", { prefetch: -1 }],
        ["lease", { lease: 0 }],
        ["lease", { lease: Infinity }],
        ["idleWait", { idleWait: Number.NaN }],
        ["shutdownTimeout", { shutdownTimeout: -1 }],
        ["maxLostLeases", { maxLostLeases: -1 }]
      ]
      for (const [option, options] of cases) {
        const exit = yield* Effect.exit(Effect.scoped(Worker.make({ handlers: [handler], ...options })))
        assert(Exit.isFailure(exit), JSON.stringify(options))
        const reason = exit.cause.reasons[0]
        assert(reason?._tag === "Fail" && reason.error._tag === "InvalidOption", JSON.stringify(options))
        assert.deepStrictEqual([reason.error.of, reason.error.option], ["worker", option])
      }
    }).pipe(Effect.provide(MemoryBroker.layer))
  })
})
