import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { BrokerConformance, ResultsConformance } from "@errand/core/testing"
import { MemoryBroker } from "@errand/memory"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"

BrokerConformance.suite("memory", MemoryBroker.layer)
ResultsConformance.suite("memory", MemoryBroker.layer)

// Memory-only behaviour. Each test gets its own broker.

const boom = { tag: "Boom", message: "boom" }

const message = (queue: string, id: string, options?: { readonly priority?: number; readonly delay?: number }) =>
  Effect.map(Clock.currentTimeMillis, (now): Broker.Outgoing => ({
    id,
    queue,
    priority: options?.priority ?? 0,
    eta: now + (options?.delay ?? 0),
    body: { id }
  }))

const enqueue = (...messages: ReadonlyArray<Effect.Effect<Broker.Outgoing>>) =>
  Effect.flatMap(
    Effect.all(messages),
    (messages) => Effect.flatMap(Broker.Broker, (broker) => broker.enqueue(messages))
  )

const take = (queue: string, options?: Partial<Omit<Broker.TakeRequest, "queue">>) =>
  Effect.flatMap(Broker.Broker, (broker) => broker.take({ queue, max: 1, lease: "30 seconds", ...options }))

const ids = (taken: Broker.Taken) => taken.deliveries.map((delivery) => delivery.id)

const isDone = (fiber: Fiber.Fiber<unknown, unknown>) => Effect.sync(() => fiber.pollUnsafe() !== undefined)

/** A consumer that runs `handle` on every message of a queue and applies its settlement, forever. */
const consume = (queue: string, handle: (delivery: Broker.Delivery, now: number) => Broker.Settlement) =>
  Effect.gen(function*() {
    let settle: ReadonlyArray<Broker.Settlement> = []
    while (true) {
      const taken = yield* take(queue, { max: 10, wait: "1 minute", settle })
      const now = yield* Clock.currentTimeMillis
      settle = taken.deliveries.map((delivery) => handle(delivery, now))
    }
  })

describe("MemoryBroker", () => {
  describe("join", () => {
    it.effect("returns at once when the queue has nothing to do", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* MemoryBroker.join("idle"), [])
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("waits until a consumer drains the queue, and returns what was dead-lettered meanwhile", () =>
      Effect.gen(function*() {
        // Given a dead letter from before, and three messages: one fine, one poison, one flaky
        yield* enqueue(message("email", "old"))
        yield* Effect.flatMap(
          Broker.Broker,
          (broker) =>
            Effect.flatMap(
              take("email"),
              (taken) => broker.settle([{ _tag: "DeadLetter", delivery: taken.deliveries[0]!, reason: boom }])
            )
        )
        yield* enqueue(message("email", "fine"), message("email", "poison"), message("email", "flaky"))
        const joining = yield* Effect.forkChild(MemoryBroker.join("email"))
        // When a consumer handles them, retrying the flaky one after a second
        yield* Effect.forkChild(consume("email", (delivery, now): Broker.Settlement =>
          delivery.id === "poison"
            ? { _tag: "DeadLetter", delivery, reason: boom }
            : delivery.id === "flaky" && delivery.attempts === 0
            ? { _tag: "Retry", delivery, eta: now + 1_000, error: boom }
            : { _tag: "Ack", delivery }))
        yield* TestClock.adjust(999)
        assert.isFalse(yield* isDone(joining))
        yield* TestClock.adjust(1)
        // Then join returns the poison message only, once the flaky one succeeded
        const dead = yield* Fiber.join(joining)
        assert.deepStrictEqual(dead.map((letter) => [letter.id, letter.reason]), [["poison", boom]])
        assert.deepStrictEqual(yield* MemoryBroker.stats("email"), { ready: 0, delayed: 0, inFlight: 0, dead: 2 })
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("with failFast, fails with DeadLettered as soon as a message is dead-lettered", () =>
      Effect.gen(function*() {
        yield* enqueue(message("email", "poison"), message("email", "later", { delay: 60_000 }))
        const joining = yield* Effect.forkChild(Effect.flip(MemoryBroker.join("email", { failFast: true })))
        yield* Effect.forkChild(consume("email", (delivery) => ({ _tag: "DeadLetter", delivery, reason: boom })))
        const error = yield* Fiber.join(joining)
        assert.strictEqual(error._tag, "DeadLettered")
        assert.strictEqual(error.queue, "email")
        assert.deepStrictEqual(error.deadLetters.map((letter) => letter.id), ["poison"])
        assert.include(error.message, "poison (Boom: boom)")
        // The delayed message is still there: join did not wait for it
        assert.deepStrictEqual(yield* MemoryBroker.stats("email"), { ready: 0, delayed: 1, inFlight: 0, dead: 1 })
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("returns when the queue is flushed", () =>
      Effect.gen(function*() {
        yield* enqueue(message("email", "a"))
        const joining = yield* Effect.forkChild(MemoryBroker.join("email"))
        yield* Effect.yieldNow
        assert.isFalse(yield* isDone(joining))
        yield* Effect.flatMap(Broker.Broker, (broker) => broker.flush("email"))
        assert.deepStrictEqual(yield* Fiber.join(joining), [])
      }).pipe(Effect.provide(MemoryBroker.layer)))
  })

  describe("inspection", () => {
    it.effect("reads sizes, stats, dead letters and queue names through accessors", () =>
      Effect.gen(function*() {
        yield* enqueue(message("email", "a"), message("email", "b", { delay: 1_000 }), message("sms", "c"))
        const taken = yield* take("email")
        yield* Effect.flatMap(Broker.Broker, (broker) =>
          broker.settle([{ _tag: "DeadLetter", delivery: taken.deliveries[0]!, reason: boom }]))
        assert.deepStrictEqual(yield* MemoryBroker.stats("email"), { ready: 0, delayed: 1, inFlight: 0, dead: 1 })
        assert.strictEqual(yield* MemoryBroker.size("email"), 1)
        assert.strictEqual(yield* MemoryBroker.size("sms"), 1)
        const dead = yield* MemoryBroker.deadLetters("email")
        assert.deepStrictEqual(dead.map((letter) => [letter.id, letter.attempts, letter.reason]), [["a", 1, boom]])
        const memory = yield* MemoryBroker.MemoryBroker
        assert.deepStrictEqual([...(yield* memory.queues)].sort(), ["email", "sms"])
        assert.strictEqual(memory.broker, yield* Broker.Broker)
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("forgets a queue when it is flushed, and stats do not create one", () =>
      Effect.gen(function*() {
        const memory = yield* MemoryBroker.MemoryBroker
        assert.deepStrictEqual(yield* MemoryBroker.stats("nothing"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
        yield* enqueue(message("email", "a"))
        yield* memory.broker.flush("email")
        assert.deepStrictEqual(yield* memory.queues, [])
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("make builds independent brokers", () =>
      Effect.gen(function*() {
        const one = yield* MemoryBroker.make
        const two = yield* MemoryBroker.make
        yield* one.broker.enqueue([yield* message("email", "a")])
        assert.strictEqual(yield* one.size("email"), 1)
        assert.strictEqual(yield* two.size("email"), 0)
      }))
  })

  describe("waiting takes on TestClock", () => {
    it.effect("wake when a delayed message comes due", () =>
      Effect.gen(function*() {
        const waiting = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
        yield* Effect.yieldNow
        yield* enqueue(message("email", "later", { delay: 5_000 }))
        yield* TestClock.adjust(4_999)
        assert.isFalse(yield* isDone(waiting))
        yield* TestClock.adjust(1)
        const taken = yield* Fiber.join(waiting)
        assert.deepStrictEqual(ids(taken), ["later"])
        assert.strictEqual(taken.deliveries[0]!.leaseExpiresAt, 5_000 + 30_000)
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("wake when a lease lapses, and get the message again", () =>
      Effect.gen(function*() {
        yield* enqueue(message("email", "a"))
        yield* take("email", { lease: 10_000 })
        const waiting = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
        yield* TestClock.adjust(9_999)
        assert.isFalse(yield* isDone(waiting))
        yield* TestClock.adjust(1)
        const taken = yield* Fiber.join(waiting)
        assert.deepStrictEqual(taken.deliveries.map((delivery) => [delivery.id, delivery.deliveries]), [["a", 2]])
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("return nothing at the end of their wait", () =>
      Effect.gen(function*() {
        const waiting = yield* Effect.forkChild(take("email", { wait: "10 seconds" }))
        yield* TestClock.adjust(9_999)
        assert.isFalse(yield* isDone(waiting))
        yield* TestClock.adjust(1)
        assert.deepStrictEqual(yield* Fiber.join(waiting), { deliveries: [], rejected: [] })
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("each return at their own deadline, whatever the order they started in", () =>
      Effect.gen(function*() {
        const long = yield* Effect.forkChild(take("email", { wait: "10 seconds" }))
        yield* Effect.yieldNow
        const short = yield* Effect.forkChild(take("email", { wait: "5 seconds" }))
        yield* TestClock.adjust(5_000)
        assert.deepStrictEqual(yield* Fiber.join(short), { deliveries: [], rejected: [] })
        assert.isFalse(yield* isDone(long))
        // A message enqueued now goes to the take still waiting
        yield* enqueue(message("email", "a"))
        assert.deepStrictEqual(ids(yield* Fiber.join(long)), ["a"])
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("keep working after all waiters left and new ones arrive", () =>
      Effect.gen(function*() {
        for (let round = 0; round < 3; round++) {
          const waiting = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
          yield* Effect.yieldNow
          yield* enqueue(message("email", `delayed-${round}`, { delay: 1_000 }))
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(ids(yield* Fiber.join(waiting)), [`delayed-${round}`])
        }
        const interrupted = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(interrupted)
        const last = yield* Effect.forkChild(take("email", { wait: "2 seconds" }))
        yield* TestClock.adjust(2_000)
        assert.deepStrictEqual(yield* Fiber.join(last), { deliveries: [], rejected: [] })
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("are served first come, first served, one message batch per waiter", () =>
      Effect.gen(function*() {
        const waiters: Array<Fiber.Fiber<Broker.Taken, Broker.Broker extends never ? never : unknown>> = []
        for (let i = 0; i < 4; i++) {
          waiters.push(yield* Effect.forkChild(take("email", { max: 2, wait: "1 minute" })))
          yield* Effect.yieldNow
        }
        // When three messages arrive
        yield* enqueue(message("email", "a"), message("email", "b"), message("email", "c"))
        yield* Effect.yieldNow
        // Then the first waiter gets two, the second one, and the others keep waiting
        assert.deepStrictEqual(ids(yield* Fiber.join(waiters[0]!)), ["a", "b"])
        assert.deepStrictEqual(ids(yield* Fiber.join(waiters[1]!)), ["c"])
        assert.isFalse(yield* isDone(waiters[2]!))
        assert.isFalse(yield* isDone(waiters[3]!))
        yield* enqueue(message("email", "d"))
        assert.deepStrictEqual(ids(yield* Fiber.join(waiters[2]!)), ["d"])
        assert.isFalse(yield* isDone(waiters[3]!))
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("rearm when an earlier delayed message arrives while they wait", () =>
      Effect.gen(function*() {
        const first = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
        const second = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
        yield* Effect.yieldNow
        yield* enqueue(message("email", "in-5s", { delay: 5_000 }), message("email", "in-3s", { delay: 3_000 }))
        yield* TestClock.adjust(3_000)
        assert.deepStrictEqual(ids(yield* Fiber.join(first)), ["in-3s"])
        assert.isFalse(yield* isDone(second))
        yield* TestClock.adjust(2_000)
        assert.deepStrictEqual(ids(yield* Fiber.join(second)), ["in-5s"])
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("leave their place to the next waiter when interrupted", () =>
      Effect.gen(function*() {
        const first = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
        const second = yield* Effect.forkChild(take("email", { wait: "1 minute" }))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(first)
        yield* enqueue(message("email", "a"))
        assert.deepStrictEqual(ids(yield* Fiber.join(second)), ["a"])
        assert.deepStrictEqual(yield* MemoryBroker.stats("email"), { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("hand over the messages released by a piggy-backed settlement", () =>
      Effect.gen(function*() {
        yield* enqueue(message("email", "a"), message("email", "b"))
        const taken = yield* take("email", { max: 2 })
        const waiting = yield* Effect.forkChild(take("email", { max: 5, wait: "1 minute" }))
        yield* Effect.yieldNow
        // When a consumer releases both and takes one back
        const again = yield* take("email", {
          settle: taken.deliveries.map((delivery) => ({ _tag: "Release", delivery }))
        })
        // Then the waiter, first in line, got both
        assert.deepStrictEqual(ids(yield* Fiber.join(waiting)), ["a", "b"])
        assert.deepStrictEqual(ids(again), [])
      }).pipe(Effect.provide(MemoryBroker.layer)))
  })

  describe("deliveries and their entries", () => {
    it.effect("a delivery is a plain record to its users; a copy of it (without the broker's link) is just as current", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        yield* enqueue(message("q", "a"), message("q", "b"))
        const [a, b] = (yield* take("q", { max: 2 })).deliveries
        const now = yield* Clock.currentTimeMillis
        assert.deepStrictEqual({ ...a! }, {
          id: "a",
          queue: "q",
          body: { id: "a" },
          attempts: 0,
          deliveries: 1,
          lastError: undefined,
          lease: a!.lease,
          leaseExpiresAt: now + 30_000
        })
        assert.deepStrictEqual(Object.keys(a!), Object.keys({ ...a! }))
        // copies are found by id and lease, like the deliveries themselves
        assert.deepStrictEqual(yield* broker.extend([{ ...a! }], "1 minute"), [])
        assert.deepStrictEqual(yield* broker.settle([{ _tag: "Ack", delivery: { ...a! } }]), [])
        // a settled delivery, or a copy of it, is not current any more
        assert.deepStrictEqual(yield* broker.settle([{ _tag: "Ack", delivery: a! }]), ["a"])
        assert.deepStrictEqual(yield* broker.extend([{ ...a! }], "1 minute"), ["a"])
        assert.deepStrictEqual(yield* broker.stats("q"), { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
        // a flushed queue's deliveries are not current, even when the same ids come back
        yield* broker.flush("q")
        yield* enqueue(message("q", "b"))
        const [again] = (yield* take("q")).deliveries
        assert.deepStrictEqual(yield* broker.settle([{ _tag: "Ack", delivery: b! }]), ["b"])
        assert.deepStrictEqual(yield* broker.stats("q"), { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
        assert.deepStrictEqual(yield* broker.settle([{ _tag: "Ack", delivery: again! }]), [])
        assert.deepStrictEqual(yield* broker.stats("q"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("a lapsed lease's delivery is current until the message comes back, then never again", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        yield* enqueue(message("q", "a"))
        const [first] = (yield* take("q", { lease: "10 seconds" })).deliveries
        yield* TestClock.adjust("10 seconds")
        // the queue has not been used since the lease lapsed: the late ack still counts
        assert.deepStrictEqual(yield* broker.extend([first!], "10 seconds"), [])
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(yield* broker.stats("q"), { ready: 1, delayed: 0, inFlight: 0, dead: 0 })
        assert.deepStrictEqual(yield* broker.settle([{ _tag: "Ack", delivery: first! }]), ["a"])
        const [second] = (yield* take("q")).deliveries
        assert.strictEqual(second!.deliveries, 2)
        assert.deepStrictEqual(yield* broker.settle([{ _tag: "Ack", delivery: first! }]), ["a"])
        assert.deepStrictEqual(yield* broker.settle([{ _tag: "Ack", delivery: second! }]), [])
      }).pipe(Effect.provide(MemoryBroker.layer)))
  })

  describe("scale", () => {
    it.effect("keeps many priority levels in order", () =>
      Effect.gen(function*() {
        const priorities = Array.from({ length: 40 }, (_, i) => (i * 17) % 40 - 20)
        yield* enqueue(...priorities.map((priority) => message("email", `p${priority}`, { priority })))
        const taken = yield* take("email", { max: 100 })
        assert.deepStrictEqual(ids(taken), [...priorities].sort((a, b) => a - b).map((priority) => `p${priority}`))
        // Empty levels are dropped and reused
        const more = [3, -30, 50, 3]
        yield* enqueue(...more.map((priority, i) => message("email", `q${i}`, { priority })))
        assert.deepStrictEqual(ids(yield* take("email", { max: 100 })), ["q1", "q0", "q3", "q2"])
      }).pipe(Effect.provide(MemoryBroker.layer)))

    it.effect("drains 20,000 messages through 50 waiting consumers while a producer enqueues", () =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const seen = new Map<string, number>()
        const consumer = Effect.gen(function*() {
          let settle: ReadonlyArray<Broker.Settlement> = []
          while (true) {
            const taken = yield* broker.take({ queue: "bulk", max: 8, lease: "30 seconds", wait: "1 minute", settle })
            for (const delivery of taken.deliveries) seen.set(delivery.id, (seen.get(delivery.id) ?? 0) + 1)
            settle = taken.deliveries.map((delivery): Broker.Settlement => ({ _tag: "Ack", delivery }))
            yield* Effect.yieldNow
          }
        })
        const consumers = yield* Effect.forkChild(
          Effect.all(Array.from({ length: 50 }, () => consumer), { concurrency: "unbounded" })
        )
        for (let batch = 0; batch < 200; batch++) {
          yield* broker.enqueue(Array.from({ length: 100 }, (_, i): Broker.Outgoing => ({
            id: `m${batch * 100 + i}`,
            queue: "bulk",
            priority: i % 2,
            eta: 0,
            body: null
          })))
          yield* Effect.yieldNow
        }
        // The last acks ride on the consumers' next takes, which then wait for more
        assert.deepStrictEqual(yield* MemoryBroker.join("bulk"), [])
        yield* Fiber.interrupt(consumers)
        assert.strictEqual(seen.size, 20_000)
        assert.isTrue([...seen.values()].every((count) => count === 1))
        assert.deepStrictEqual(yield* broker.stats("bulk"), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }).pipe(Effect.provide(MemoryBroker.layer)))
  })
})
