/**
 * The broker conformance suite: the behaviour every Errand broker must show, as `@effect/vitest` tests.
 *
 * **Using it**
 *
 * An adapter runs the whole suite against its layer in one line of its test file:
 *
 * ```ts
 * // packages/my-broker/test/MyBroker.test.ts
 * import { BrokerConformance } from "@errand/core/testing"
 * import { MyBroker } from "@errand/my-broker"
 *
 * BrokerConformance.suite("my-broker", MyBroker.layer)
 * ```
 *
 * and adds its own backend-specific tests below it (for example, that a dead letter really exists in the backend).
 *
 * **What the suite assumes**
 *
 * - The layer is built once per block and shared by its tests; every test uses its own queue (a random name) and
 *   flushes it when done, so one real backend (one Redis) can serve the whole run.
 * - The broker reads time from Effect's `Clock`. Most tests run on `TestClock` and use non-blocking takes
 *   (`wait` 0), moving the clock with `TestClock.adjust`. A few tests of blocking takes run on the live clock in a
 *   second block, with short real waits.
 * - Message bodies are JSON-compatible values and come back deep-equal.
 *
 * @since 0.1.0
 */
import { assert, describe, layer } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, type Layer, type Scope } from "effect"
import { TestClock } from "effect/testing"
import { randomUUID } from "node:crypto"
import {
  Broker,
  type CancelOutcome,
  type Delivery,
  type Enqueued,
  type Heartbeat,
  type Limits,
  maxAttemptHistory,
  maxPriority,
  type Outgoing,
  type QueueStats,
  type Settlement,
  type Taken,
  type TakeRequest
} from "../Broker.ts"
import { type BrokerError, InvalidMessageId } from "../ErrandError.ts"
import type { LastError } from "../Message.ts"

/**
 * Registers the conformance suite for a broker layer: one block on `TestClock` and one on the live clock.
 *
 * @category testing
 * @since 0.1.0
 */
export const suite = (name: string, brokerLayer: Layer.Layer<Broker, unknown>): void => {
  layer(brokerLayer)(`${name} broker conformance`, (it) => {
    describe("ordering", () => {
      it.effect("takes messages of equal priority in the order they were enqueued", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a"), q.message("b"), q.message("c")])
          yield* q.enqueue([q.message("d")])
          yield* q.enqueue([q.message("e")])
          const taken: Array<string> = []
          for (let i = 0; i < 5; i++) taken.push(...q.labels(yield* q.take()))
          assert.deepStrictEqual(taken, ["a", "b", "c", "d", "e"])
        }))

      it.effect("takes a lower priority number first, FIFO among equal priorities", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([
            q.message("p5", { priority: 5 }),
            q.message("p1-first", { priority: 1 }),
            q.message("p3", { priority: 3 }),
            q.message("p1-second", { priority: 1 }),
            q.message("p-2", { priority: -2 })
          ])
          const taken: Array<string> = []
          for (let i = 0; i < 5; i++) taken.push(...q.labels(yield* q.take()))
          assert.deepStrictEqual(taken, ["p-2", "p1-first", "p1-second", "p3", "p5"])
        }))

      it.effect("returns a batch take in priority order, then FIFO", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([
            q.message("low-1", { priority: 9 }),
            q.message("high-1", { priority: 0 }),
            q.message("low-2", { priority: 9 }),
            q.message("high-2", { priority: 0 })
          ])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["high-1", "high-2", "low-1", "low-2"])
        }))

      it.effect("takes at most max messages", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue(["a", "b", "c", "d", "e"].map((label) => q.message(label)))
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 2 })), ["a", "b"])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 2 })), ["c", "d"])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 2 })), ["e"])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 2 })), [])
        }))

      it.effect("hands over the body exactly as it was enqueued", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const body = { actor: "email", payload: { to: ["a@b.c"], n: 1.5, ok: true, none: null }, enqueuedAt: 1 }
          yield* q.enqueue([q.message("a", { body })])
          const [delivery] = (yield* q.take()).deliveries
          assert.deepStrictEqual(delivery?.body, body)
          assert.strictEqual(delivery?.queue, q.queue)
        }))
    })

    describe("delays", () => {
      it.effect("does not take a delayed message before its eta, and takes it once the eta passes", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          // Given a message due in one second
          yield* q.enqueue([q.message("later", { delay: 1000 })])
          // Then it is not taken before then
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
          yield* TestClock.adjust(999)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
          // And it is taken once its eta is reached
          yield* TestClock.adjust(1)
          assert.deepStrictEqual(q.labels(yield* q.take()), ["later"])
        }))

      it.effect("makes a message whose eta is in the past ready at once", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("overdue", { delay: -60_000 }), q.message("now", { delay: 0 })])
          assert.deepStrictEqual(yield* q.stats, { ready: 2, delayed: 0, inFlight: 0, dead: 0 })
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 2 })), ["overdue", "now"])
        }))

      it.effect("takes delayed messages of equal priority in the order they came due", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("second", { delay: 2000 }), q.message("first", { delay: 1000 })])
          yield* TestClock.adjust(2000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["first", "second"])
        }))

      it.effect("keeps a delayed message's priority once it comes due", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([
            q.message("urgent-later", { delay: 1000, priority: 0 }),
            q.message("routine", { priority: 5 })
          ])
          yield* TestClock.adjust(1000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["urgent-later", "routine"])
        }))
    })

    describe("ties among equal etas", () => {
      // Labels sort in the reverse of the order they are sent or settled in (see `descending`), so a broker that breaks
      // ties by id, or by the bytes of what it stores, fails these.

      it.effect("takes 100 messages sent in one batch with the same delay in send order", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const labels = descending(100)
          yield* q.enqueue(labels.map((label) => q.message(label, { delay: 1_000 })))
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 100 })), labels)
        }))

      it.effect("takes 100 messages sent one by one with the same delay in send order", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const labels = descending(100)
          // The TestClock stands still, so every message gets the same eta
          for (const label of labels) yield* q.enqueue([q.message(label, { delay: 1_000 })])
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 100 })), labels)
        }))

      it.effect("keeps send order among equal etas within each priority", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const labels = descending(99)
          const priorityOf = (i: number) => [3, 0, -1][i % 3]!
          yield* q.enqueue(labels.map((label, i) => q.message(label, { delay: 1_000, priority: priorityOf(i) })))
          yield* TestClock.adjust(1_000)
          const expected = [-1, 0, 3].flatMap((p) => labels.filter((_, i) => priorityOf(i) === p))
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 99 })), expected)
        }))

      it.effect("retries settled in one call for the same eta come due in settlement order", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const deliveries = yield* takeAllOf(q, descending(100))
          const order = interleaved(deliveries)
          const eta = (yield* Clock.currentTimeMillis) + 1_000
          assert.deepStrictEqual(yield* q.broker.settle(order.map((delivery) => retry(delivery, eta, boom))), [])
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(
            (yield* q.take({ max: 100 })).deliveries.map((delivery) => delivery.id),
            order.map((delivery) => delivery.id)
          )
        }))

      it.effect("retries settled across calls for the same eta come due in settlement order", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const deliveries = yield* takeAllOf(q, descending(100))
          const order = interleaved(deliveries)
          const eta = (yield* Clock.currentTimeMillis) + 1_000
          // One at a time, alternately on their own and piggy-backed on a take (which finds nothing ready)
          for (const [i, delivery] of order.entries()) {
            if (i % 2 === 0) {
              assert.deepStrictEqual(yield* q.broker.settle([retry(delivery, eta, boom)]), [])
            } else {
              assert.deepStrictEqual(yield* q.take({ settle: [retry(delivery, eta, boom)] }), {
                deliveries: [],
                rejected: []
              })
            }
          }
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(
            (yield* q.take({ max: 100 })).deliveries.map((delivery) => delivery.id),
            order.map((delivery) => delivery.id)
          )
        }))

      it.effect("sends and retries for the same eta share one order: the order they were scheduled in", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const [retried] = yield* takeAllOf(q, ["b-retried"])
          yield* q.enqueue([q.message("c-sent-first", { delay: 1_000 })])
          const eta = (yield* Clock.currentTimeMillis) + 1_000
          assert.deepStrictEqual(yield* q.broker.settle([retry(retried!, eta, boom)]), [])
          yield* q.enqueue([q.message("a-sent-last", { delay: 1_000 })])
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["c-sent-first", "b-retried", "a-sent-last"])
        }))
    })

    describe("leases", () => {
      it.effect("leases a delivery with a token, an expiry and its counts", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const now = yield* Clock.currentTimeMillis
          const [delivery] = (yield* q.take({ lease: "30 seconds" })).deliveries
          assert.isDefined(delivery)
          assert.strictEqual(delivery.id, q.id("a"))
          assert.isString(delivery.lease)
          assert.isAbove(delivery.lease.length, 0)
          assert.strictEqual(delivery.leaseExpiresAt, now + 30_000)
          assert.strictEqual(delivery.attempts, 0)
          assert.strictEqual(delivery.deliveries, 1)
          assert.isUndefined(delivery.lastError)
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
        }))

      it.effect("does not hand out a leased message again while its lease holds", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          assert.deepStrictEqual(q.labels(yield* q.take({ lease: 10_000 })), ["a"])
          yield* TestClock.adjust(9_999)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
        }))

      it.effect("delivers a message again when its lease lapses, with a new token and one more delivery", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const first = yield* q.takeOne({ lease: 10_000 })
          // When the lease lapses without an ack
          yield* TestClock.adjust(10_000)
          // Then the message is delivered again under a new lease
          const second = yield* q.takeOne({ lease: 10_000 })
          assert.strictEqual(second.id, first.id)
          assert.notStrictEqual(second.lease, first.lease)
          assert.strictEqual(second.deliveries, 2)
          assert.strictEqual(second.attempts, 0)
          assert.strictEqual(second.leaseExpiresAt, (yield* Clock.currentTimeMillis) + 10_000)
        }))

      it.effect("rejects settlements carrying a lapsed lease token once the message was taken again (fencing)", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const stale = yield* q.takeOne({ lease: 10_000 })
          yield* TestClock.adjust(10_000)
          const current = yield* q.takeOne({ lease: 10_000 })
          // When the first consumer settles with its stale token
          const now = yield* Clock.currentTimeMillis
          const rejected = yield* q.broker.settle([
            ack(stale),
            retry(stale, now, boom),
            deadLetter(stale, boom),
            release(stale)
          ])
          // Then every settlement is rejected and nothing changed
          assert.deepStrictEqual(rejected, [stale.id, stale.id, stale.id, stale.id])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
          assert.deepStrictEqual(yield* q.broker.deadLetters(q.queue), [])
          // And the current holder still settles normally
          assert.deepStrictEqual(yield* q.broker.settle([ack(current)]), [])
          assert.deepStrictEqual(yield* q.stats, zero)
        }))

      it.effect("extend keeps a lease alive past its original expiry", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const delivery = yield* q.takeOne({ lease: 10_000 })
          yield* TestClock.adjust(8_000)
          assert.deepStrictEqual(yield* q.broker.extend([delivery], 10_000), [])
          // Past the original expiry, the message is still leased
          yield* TestClock.adjust(8_000)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
          // And the same token still acks it
          assert.deepStrictEqual(yield* q.broker.settle([ack(delivery)]), [])
          assert.deepStrictEqual(yield* q.stats, zero)
        }))

      it.effect("extend measures the new lease from now", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const delivery = yield* q.takeOne({ lease: 10_000 })
          yield* TestClock.adjust(8_000)
          assert.deepStrictEqual(yield* q.broker.extend([delivery], 10_000), [])
          // The lease now ends 10 s after the extension: held until then, delivered again at that time
          yield* TestClock.adjust(9_999)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
          yield* TestClock.adjust(1)
          const again = yield* q.takeOne()
          assert.strictEqual(again.id, delivery.id)
          assert.strictEqual(again.deliveries, 2)
        }))

      it.effect("extend reports the ids whose lease was lost and extends the others", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a"), q.message("b")])
          const [a, b] = (yield* q.take({ max: 2, lease: 10_000 })).deliveries
          assert.isDefined(a)
          assert.isDefined(b)
          yield* TestClock.adjust(5_000)
          assert.deepStrictEqual(yield* q.broker.extend([b], 10_000), [])
          // When a's lease lapses and another consumer takes it
          yield* TestClock.adjust(5_000)
          const a2 = yield* q.takeOne({ lease: 10_000 })
          assert.strictEqual(a2.id, a.id)
          // Then extending the old lease reports a as lost, and b is still extended
          assert.deepStrictEqual(yield* q.broker.extend([a, b], 10_000), [a.id])
          // And a message that was acked is lost too
          assert.deepStrictEqual(yield* q.broker.settle([ack(a2)]), [])
          assert.deepStrictEqual(yield* q.broker.extend([a2], 10_000), [a2.id])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
        }))
    })

    describe("settlements", () => {
      it.effect("ack removes a message for good", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const delivery = yield* q.takeOne({ lease: 10_000 })
          assert.deepStrictEqual(yield* q.broker.settle([ack(delivery)]), [])
          yield* TestClock.adjust(60_000)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
          assert.deepStrictEqual(yield* q.stats, zero)
        }))

      it.effect("retry makes a message due again at its eta, with one more attempt and the error recorded", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("flaky")])
          const first = yield* q.takeOne()
          const now = yield* Clock.currentTimeMillis
          assert.deepStrictEqual(yield* q.broker.settle([retry(first, now + 5_000, boom)]), [])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 1, inFlight: 0, dead: 0 })
          // Not before its eta
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
          yield* TestClock.adjust(4_999)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
          // At its eta
          yield* TestClock.adjust(1)
          const second = yield* q.takeOne()
          assert.strictEqual(second.id, first.id)
          assert.strictEqual(second.attempts, 1)
          assert.strictEqual(second.deliveries, 2)
          assert.deepStrictEqual(second.lastError, boom)
        }))

      it.effect("retry with an eta that has passed makes the message ready at once", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("flaky")])
          const now = yield* Clock.currentTimeMillis
          assert.deepStrictEqual(yield* q.broker.settle([retry(yield* q.takeOne(), now, boom)]), [])
          const crash: LastError = { tag: "Defect", message: "crashed" }
          assert.deepStrictEqual(yield* q.broker.settle([retry(yield* q.takeOne(), now - 1_000, crash)]), [])
          const third = yield* q.takeOne()
          assert.strictEqual(third.attempts, 2)
          assert.strictEqual(third.deliveries, 3)
          assert.deepStrictEqual(third.lastError, crash)
        }))

      it.effect("release puts a message back, ready at once, counting neither an attempt nor a delivery", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const first = yield* q.takeOne()
          assert.deepStrictEqual(yield* q.broker.settle([release(first)]), [])
          assert.deepStrictEqual(yield* q.stats, { ready: 1, delayed: 0, inFlight: 0, dead: 0 })
          const second = yield* q.takeOne()
          assert.strictEqual(second.id, first.id)
          assert.strictEqual(second.attempts, 0)
          // a released lease is not a lost one: deliveries - 1 - attempts stays 0
          assert.strictEqual(second.deliveries, 1)
          assert.notStrictEqual(second.lease, first.lease)
        }))

      it.effect("a retried or released message keeps its priority", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("urgent", { priority: 0 }), q.message("routine", { priority: 5 })])
          const now = yield* Clock.currentTimeMillis
          assert.deepStrictEqual(yield* q.broker.settle([retry(yield* q.takeOne(), now + 1_000, boom)]), [])
          yield* TestClock.adjust(1_000)
          const urgent = yield* q.takeOne()
          assert.strictEqual(urgent.id, q.id("urgent"))
          assert.deepStrictEqual(yield* q.broker.settle([release(urgent)]), [])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["urgent", "routine"])
        }))

      it.effect("rejects settlements of deliveries it never handed out", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const real = yield* q.takeOne()
          const forged: Delivery = { ...real, lease: `${real.lease}-forged` }
          const unknown: Delivery = { ...real, id: q.id("unknown"), lease: `${real.lease}-unknown` }
          assert.deepStrictEqual(yield* q.broker.settle([ack(forged), ack(unknown)]), [real.id, unknown.id])
          assert.deepStrictEqual(yield* q.broker.extend([unknown], 10_000), [unknown.id])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
        }))

      it.effect("settles several deliveries in one call", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue(["a", "b", "c", "d"].map((label) => q.message(label)))
          const [a, b, c, d] = (yield* q.take({ max: 4 })).deliveries
          const now = yield* Clock.currentTimeMillis
          const rejected = yield* q.broker.settle([
            ack(a!),
            retry(b!, now + 1_000, boom),
            deadLetter(c!, boom),
            release(d!)
          ])
          assert.deepStrictEqual(rejected, [])
          assert.deepStrictEqual(yield* q.stats, { ready: 1, delayed: 1, inFlight: 0, dead: 1 })
        }))
    })

    describe("dead letters", () => {
      it.effect("dead-letters a message with its reason, attempts and time, and never hands it out again", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("poison", { body: { n: 1 } })])
          const now = yield* Clock.currentTimeMillis
          // Given a message that failed once and was retried
          yield* q.broker.settle([retry(yield* q.takeOne(), now, boom)])
          yield* TestClock.adjust(1_000)
          // When its second attempt fails for good
          const reason: LastError = { tag: "InvalidPayload", message: "no" }
          assert.deepStrictEqual(yield* q.broker.settle([deadLetter(yield* q.takeOne(), reason)]), [])
          // Then its dead letter counts both failed attempts: the retried one and the one that dead-lettered it
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 0, dead: 1 })
          assert.deepStrictEqual(yield* q.broker.deadLetters(q.queue), [
            {
              id: q.id("poison"),
              queue: q.queue,
              body: { n: 1 },
              attempts: 2,
              reason,
              deadAt: now + 1_000,
              history: [{ at: now, ...boom }, { at: now + 1_000, ...reason }]
            }
          ])
          yield* TestClock.adjust(3_600_000)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
        }))

      it.effect("counts the attempt that dead-lettered a message at its first run", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("poison")])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom)])
          const [letter] = yield* q.broker.deadLetters(q.queue)
          assert.strictEqual(letter?.attempts, 1)
        }))

      it.effect("lists dead letters oldest first, up to a limit", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.deadLetterAll(["a", "b", "c"])
          assert.deepStrictEqual(q.deadLabels(yield* q.broker.deadLetters(q.queue)), ["a", "b", "c"])
          assert.deepStrictEqual(q.deadLabels(yield* q.broker.deadLetters(q.queue, { limit: 2 })), ["a", "b"])
          assert.deepStrictEqual(yield* q.broker.deadLetters(`${q.queue}-unknown`), [])
        }))

      it.effect("requeues all dead letters, ready at once with attempts reset to 0", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const now = yield* Clock.currentTimeMillis
          yield* q.broker.settle([retry(yield* q.takeOne(), now, boom)])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom)])
          yield* q.deadLetterAll(["b"])
          assert.strictEqual(yield* q.broker.requeueDeadLetters(q.queue), 2)
          assert.deepStrictEqual(yield* q.stats, { ready: 2, delayed: 0, inFlight: 0, dead: 0 })
          const taken = (yield* q.take({ max: 10 })).deliveries
          assert.deepStrictEqual(q.labels({ deliveries: taken, rejected: [] }).sort(), ["a", "b"])
          assert.deepStrictEqual(taken.map((delivery) => delivery.attempts), [0, 0])
          assert.strictEqual(yield* q.broker.requeueDeadLetters(q.queue), 0)
        }))

      it.effect("requeues only the dead letters with the given ids", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.deadLetterAll(["a", "b", "c"])
          assert.strictEqual(yield* q.broker.requeueDeadLetters(q.queue, { ids: [q.id("b"), q.id("unknown")] }), 1)
          assert.deepStrictEqual(q.deadLabels(yield* q.broker.deadLetters(q.queue)), ["a", "c"])
          const delivery = yield* q.takeOne()
          assert.strictEqual(delivery.id, q.id("b"))
          assert.strictEqual(delivery.attempts, 0)
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 2 })
        }))

      it.effect("purges all dead letters", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.deadLetterAll(["a", "b"])
          assert.strictEqual(yield* q.broker.purgeDeadLetters(q.queue), 2)
          assert.deepStrictEqual(yield* q.broker.deadLetters(q.queue), [])
          assert.deepStrictEqual(yield* q.stats, zero)
          assert.strictEqual(yield* q.broker.requeueDeadLetters(q.queue), 0)
          assert.deepStrictEqual(q.labels(yield* q.take()), [])
        }))

      it.effect("purges only the dead letters with the given ids", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.deadLetterAll(["a", "b", "c"])
          assert.strictEqual(yield* q.broker.purgeDeadLetters(q.queue, { ids: [q.id("a"), q.id("c"), q.id("x")] }), 2)
          assert.deepStrictEqual(q.deadLabels(yield* q.broker.deadLetters(q.queue)), ["b"])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 0, dead: 1 })
        }))

      it.effect("pages dead letters: skips offset, then lists up to limit, oldest first", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.deadLetterAll(["a", "b", "c", "d", "e"])
          const page = (offset: number, limit?: number) =>
            Effect.map(q.broker.deadLetters(q.queue, { offset, limit }), q.deadLabels)
          assert.deepStrictEqual(yield* page(0, 2), ["a", "b"])
          assert.deepStrictEqual(yield* page(2, 2), ["c", "d"])
          assert.deepStrictEqual(yield* page(4, 2), ["e"])
          assert.deepStrictEqual(yield* page(1), ["b", "c", "d", "e"])
          assert.deepStrictEqual(yield* page(5, 2), [])
        }))

      it.effect("refuses an offset that is not an integer of 0 or more, with a BrokerError", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.deadLetterAll(["a"])
          for (const offset of [-1, 1.5, Number.NaN, Infinity]) {
            const error = yield* Effect.flip(q.broker.deadLetters(q.queue, { offset }))
            assert.strictEqual(error._tag, "BrokerError")
            assert.strictEqual(error.operation, "deadLetters")
            assert.strictEqual(error.applied, "no")
          }
        }))

      it.effect("reads one dead letter by id, as the list shows it; none for an unknown id or another queue", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("poison", { body: { n: 7, html: "<script>x</script>" } }), q.message("ok")])
          const now = yield* Clock.currentTimeMillis
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom)])
          const letter = yield* q.broker.deadLetter(q.queue, q.id("poison"))
          assert.deepStrictEqual(letter, {
            id: q.id("poison"),
            queue: q.queue,
            body: { n: 7, html: "<script>x</script>" },
            attempts: 1,
            reason: boom,
            deadAt: now,
            history: [{ at: now, ...boom }]
          })
          assert.deepStrictEqual((yield* q.broker.deadLetters(q.queue))[0], letter)
          // a message that is not dead (ready), an unknown id, another queue: none
          assert.strictEqual(yield* q.broker.deadLetter(q.queue, q.id("ok")), undefined)
          assert.strictEqual(yield* q.broker.deadLetter(q.queue, q.id("unknown")), undefined)
          assert.strictEqual(yield* q.broker.deadLetter(`${q.queue}-other`, q.id("poison")), undefined)
          // requeued: no longer a dead letter
          yield* q.broker.requeueDeadLetters(q.queue, { ids: [q.id("poison")] })
          assert.strictEqual(yield* q.broker.deadLetter(q.queue, q.id("poison")), undefined)
        }))
    })

    describe("attempt history", () => {
      it.effect("keeps each retried failure, then the dead-letter reason, oldest first with the settlement times", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("first")])
          const start = yield* Clock.currentTimeMillis
          // Given a message whose first two attempts fail and are retried, a second apart
          yield* q.broker.settle([retry(yield* q.takeOne(), start, { tag: "Timeout", message: "took too long" })])
          yield* TestClock.adjust(1_000)
          yield* q.broker.settle([retry(yield* q.takeOne(), start + 1_000, { tag: "Http", message: "503" })])
          yield* TestClock.adjust(1_000)
          // When its third attempt fails for good
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), { tag: "Invalid", message: "no" })])
          // Then its dead letter lists the three failures in order, at the broker's clock times
          const expected = [
            { at: start, tag: "Timeout", message: "took too long" },
            { at: start + 1_000, tag: "Http", message: "503" },
            { at: start + 2_000, tag: "Invalid", message: "no" }
          ]
          const letter = yield* q.broker.deadLetter(q.queue, q.id("first"))
          assert.deepStrictEqual(letter?.history, expected)
          assert.strictEqual(letter?.attempts, 3)
          // and the list and a page past the first letter show the same history
          yield* q.enqueue([q.message("poison")])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom)])
          const all = yield* q.broker.deadLetters(q.queue)
          assert.deepStrictEqual(all.map((l) => l.history), [expected, [{ at: start + 2_000, ...boom }]])
          const page = yield* q.broker.deadLetters(q.queue, { offset: 1, limit: 1 })
          assert.deepStrictEqual(page.map((l) => l.history), [[{ at: start + 2_000, ...boom }]])
          const first = yield* q.broker.deadLetters(q.queue, { offset: 0, limit: 1 })
          assert.deepStrictEqual(first.map((l) => l.history), [expected])
        }))

      it.effect(`keeps only the last ${maxAttemptHistory} entries`, () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("flaky")])
          const start = yield* Clock.currentTimeMillis
          // Given a message that failed and was retried 12 times, a second apart
          for (let i = 1; i <= 12; i++) {
            const now = yield* Clock.currentTimeMillis
            yield* q.broker.settle([retry(yield* q.takeOne(), now, { tag: "Boom", message: `failure ${i}` })])
            yield* TestClock.adjust(1_000)
          }
          // When it is dead-lettered
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), { tag: "Final", message: "failure 13" })])
          // Then its history holds the last 10 of its 13 failures, oldest first
          const [letter] = yield* q.broker.deadLetters(q.queue)
          assert.strictEqual(letter?.attempts, 13)
          assert.deepStrictEqual(
            letter?.history.map((r) => [r.at - start, r.message]),
            [4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((n) => [(n - 1) * 1_000, `failure ${n}`])
          )
          assert.strictEqual(letter?.history.at(-1)?.tag, "Final")
        }))

      it.effect("starts a fresh history when a dead letter is requeued, as its attempts restart at 0", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("poison")])
          const start = yield* Clock.currentTimeMillis
          // Given a dead letter with two failures
          yield* q.broker.settle([retry(yield* q.takeOne(), start, { tag: "Old", message: "first life" })])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), { tag: "Old", message: "died" })])
          assert.strictEqual((yield* q.broker.deadLetter(q.queue, q.id("poison")))?.history.length, 2)
          // When it is requeued, fails once more, is retried, and dies again
          assert.strictEqual(yield* q.broker.requeueDeadLetters(q.queue), 1)
          yield* TestClock.adjust(5_000)
          yield* q.broker.settle([retry(yield* q.takeOne(), start + 5_000, { tag: "New", message: "again" })])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), { tag: "New", message: "died again" })])
          // Then its history has only the attempts of its second life
          const letter = yield* q.broker.deadLetter(q.queue, q.id("poison"))
          assert.strictEqual(letter?.attempts, 2)
          assert.deepStrictEqual(letter?.history, [
            { at: start + 5_000, tag: "New", message: "again" },
            { at: start + 5_000, tag: "New", message: "died again" }
          ])
        }))

      it.effect("an acked message that failed before leaves nothing behind; a later dead letter of its id starts empty", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("flaky")])
          const now = yield* Clock.currentTimeMillis
          // Given a message retried once, then acked
          yield* q.broker.settle([retry(yield* q.takeOne(), now, boom)])
          yield* q.broker.settle([ack(yield* q.takeOne())])
          assert.deepStrictEqual(yield* q.stats, zero)
          assert.deepStrictEqual(yield* q.broker.deadLetters(q.queue), [])
          // When a new message with the same id is dead-lettered at its first run
          yield* q.enqueue([q.message("flaky")])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), { tag: "Fresh", message: "only" })])
          // Then its history is its own failure alone
          assert.deepStrictEqual((yield* q.broker.deadLetter(q.queue, q.id("flaky")))?.history, [
            { at: now, tag: "Fresh", message: "only" }
          ])
        }))

      it.effect("records the reason of a message dead-lettered unrun as its only entry", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("undecodable")])
          const now = yield* Clock.currentTimeMillis
          const reason: LastError = { tag: "InvalidPayload", message: "not JSON" }
          yield* q.broker.settle([{ _tag: "DeadLetter", delivery: yield* q.takeOne(), reason, ran: false }])
          const letter = yield* q.broker.deadLetter(q.queue, q.id("undecodable"))
          assert.strictEqual(letter?.attempts, 0)
          assert.deepStrictEqual(letter?.history, [{ at: now, ...reason }])
        }))
    })

    describe("heartbeats", () => {
      it.effect("keeps each process's latest heartbeat until it expires, sorted by id", () =>
        Effect.gen(function*() {
          const broker = yield* Broker
          const run = randomUUID()
          const ours = (beats: ReadonlyArray<Heartbeat>) => beats.filter((beat) => beat.id.startsWith(run))
          const now = yield* Clock.currentTimeMillis
          // Given two processes, the second reporting twice
          yield* broker.heartbeat({ id: `${run}-b`, expiresAt: now + 10_000, report: { n: 1 } })
          yield* broker.heartbeat({ id: `${run}-a`, expiresAt: now + 5_000, report: { queues: ["x"], n: 1 } })
          yield* broker.heartbeat({ id: `${run}-b`, expiresAt: now + 10_000, report: { n: 2 } })
          // Then each is listed once, with its latest report
          assert.deepStrictEqual(ours(yield* broker.heartbeats), [
            { id: `${run}-a`, expiresAt: now + 5_000, report: { queues: ["x"], n: 1 } },
            { id: `${run}-b`, expiresAt: now + 10_000, report: { n: 2 } }
          ])
          // When the first one's time runs out, it is gone; the other stays until its own
          yield* TestClock.adjust(5_000)
          assert.deepStrictEqual(ours(yield* broker.heartbeats).map((beat) => beat.id), [`${run}-b`])
          yield* TestClock.adjust(5_000)
          assert.deepStrictEqual(ours(yield* broker.heartbeats), [])
        }))

      it.effect("refuses a heartbeat with an empty id or an expiresAt that is not finite, and stores nothing", () =>
        Effect.gen(function*() {
          const broker = yield* Broker
          const run = randomUUID()
          const now = yield* Clock.currentTimeMillis
          for (
            const beat of [
              { id: "", expiresAt: now + 5_000, report: {} },
              { id: `${run}-nan`, expiresAt: Number.NaN, report: {} },
              { id: `${run}-inf`, expiresAt: Infinity, report: {} }
            ]
          ) {
            const error = yield* Effect.flip(broker.heartbeat(beat))
            assert.strictEqual(error._tag, "BrokerError")
            assert.strictEqual(error.operation, "heartbeat")
            assert.strictEqual(error.applied, "no")
          }
          const stored = (yield* broker.heartbeats).filter((beat) => beat.id === "" || beat.id.startsWith(run))
          assert.deepStrictEqual(stored, [])
        }))
    })

    describe("enqueue", () => {
      it.effect("enqueues a batch of ready and delayed messages at once", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([
            q.message("a"),
            q.message("later", { delay: 5_000 }),
            q.message("b", { priority: 3 }),
            q.message("c")
          ])
          assert.deepStrictEqual(yield* q.stats, { ready: 3, delayed: 1, inFlight: 0, dead: 0 })
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["a", "c", "b"])
        }))

      it.effect("enqueues one batch spanning several queues", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const other = yield* fixture
          yield* q.enqueue([q.message("a"), other.message("x"), q.message("b")])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["a", "b"])
          assert.deepStrictEqual(other.labels(yield* other.take({ max: 10 })), ["x"])
        }))

      it.effect("accepts an empty batch", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([])
          assert.deepStrictEqual(yield* q.stats, zero)
        }))
    })

    describe("take with settlements", () => {
      it.effect("applies piggy-backed settlements even when nothing is left to take", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a"), q.message("b")])
          const [a, b] = (yield* q.take({ max: 2 })).deliveries
          const taken = yield* q.take({ max: 2, settle: [ack(a!), ack(b!)] })
          assert.deepStrictEqual(taken, { deliveries: [], rejected: [] })
          assert.deepStrictEqual(yield* q.stats, zero)
        }))

      it.effect("applies piggy-backed settlements before taking", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const first = yield* q.takeOne()
          // When a consumer releases its message and takes in the same call
          const taken = yield* q.take({ settle: [release(first)] })
          // Then it gets the released message back
          assert.deepStrictEqual(q.labels(taken), ["a"])
          assert.strictEqual(taken.deliveries[0]?.deliveries, 1)
          assert.deepStrictEqual(taken.rejected, [])
        }))

      it.effect("reports stale piggy-backed settlements as rejected and applies the rest", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a"), q.message("b")])
          const [a, b] = (yield* q.take({ max: 2, lease: 10_000 })).deliveries
          yield* TestClock.adjust(5_000)
          yield* q.broker.extend([b!], 10_000)
          yield* TestClock.adjust(5_000)
          // a's lease lapsed and another consumer took it
          const a2 = yield* q.takeOne({ lease: 10_000 })
          const taken = yield* q.take({ settle: [ack(a!), ack(b!)] })
          assert.deepStrictEqual(taken, { deliveries: [], rejected: [a!.id] })
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
          assert.deepStrictEqual(yield* q.broker.settle([ack(a2)]), [])
        }))
    })

    describe("stats and flush", () => {
      it.effect("counts ready, delayed, in-flight and dead messages at every stage", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          assert.deepStrictEqual(yield* q.stats, zero)
          yield* q.enqueue([q.message("a"), q.message("b"), q.message("later", { delay: 1_000 })])
          assert.deepStrictEqual(yield* q.stats, { ready: 2, delayed: 1, inFlight: 0, dead: 0 })
          const a = yield* q.takeOne()
          assert.deepStrictEqual(yield* q.stats, { ready: 1, delayed: 1, inFlight: 1, dead: 0 })
          yield* q.broker.settle([deadLetter(a, boom)])
          assert.deepStrictEqual(yield* q.stats, { ready: 1, delayed: 1, inFlight: 0, dead: 1 })
          // A delayed message that came due counts as ready
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(yield* q.stats, { ready: 2, delayed: 0, inFlight: 0, dead: 1 })
          const taken = (yield* q.take({ max: 2 })).deliveries
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 2, dead: 1 })
          yield* q.broker.settle(taken.map(ack))
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 0, dead: 1 })
          yield* q.broker.purgeDeadLetters(q.queue)
          assert.deepStrictEqual(yield* q.stats, zero)
        }))

      it.effect("flush deletes ready, delayed, in-flight and dead messages of one queue only", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const other = yield* fixture
          yield* other.enqueue([other.message("x")])
          yield* q.deadLetterAll(["dead"])
          yield* q.enqueue([q.message("leased")])
          const leased = yield* q.takeOne()
          yield* q.enqueue([q.message("ready"), q.message("later", { delay: 1_000 })])
          assert.deepStrictEqual(yield* q.stats, { ready: 1, delayed: 1, inFlight: 1, dead: 1 })
          yield* q.broker.flush(q.queue)
          assert.deepStrictEqual(yield* q.stats, zero)
          assert.deepStrictEqual(yield* q.broker.deadLetters(q.queue), [])
          yield* TestClock.adjust(60_000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), [])
          // The flushed lease is gone: its ack changes nothing
          assert.deepStrictEqual(yield* q.broker.settle([ack(leased)]), [leased.id])
          assert.deepStrictEqual(yield* other.stats, { ready: 1, delayed: 0, inFlight: 0, dead: 0 })
        }))
    })

    describe("concurrency", () => {
      it.effect("loses and duplicates nothing when 8 consumers take and ack 500 messages concurrently", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const labels = Array.from({ length: 500 }, (_, i) => `m${i}`)
          yield* q.enqueue(labels.map((label, i) => q.message(label, { priority: i % 3 })))
          const seen = new Map<string, number>()
          const consumer = Effect.gen(function*() {
            let settle: ReadonlyArray<Settlement> = []
            while (true) {
              const taken = yield* q.take({ max: 16, settle })
              assert.deepStrictEqual(taken.rejected, [])
              if (taken.deliveries.length === 0) return
              for (const delivery of taken.deliveries) seen.set(delivery.id, (seen.get(delivery.id) ?? 0) + 1)
              settle = taken.deliveries.map(ack)
              yield* Effect.yieldNow
            }
          })
          yield* Effect.all(Array.from({ length: 8 }, () => consumer), { concurrency: "unbounded" })
          assert.strictEqual(seen.size, 500)
          assert.deepStrictEqual([...seen.values()].filter((count) => count !== 1), [])
          assert.deepStrictEqual(labels.filter((label) => !seen.has(q.id(label))), [])
          assert.deepStrictEqual(yield* q.stats, zero)
        }))
    })
    describe("group records", () => {
      it.effect("counts each member once, succeeded or failed, however often it is recorded", () =>
        Effect.gen(function*() {
          const broker = yield* Broker
          const group = `group-${randomUUID()}`
          const record = (member: string, succeeded: boolean) =>
            broker.recordGroupMember(group, member, succeeded, 3, "1 hour")
          assert.deepStrictEqual(yield* record("m1", true), {
            succeeded: 1,
            failed: 0,
            recorded: true,
            completedBy: undefined,
            firstFailed: undefined
          })
          // a member redelivered after a lost lease records nothing new, whatever its outcome this time
          assert.deepStrictEqual(yield* record("m1", false), {
            succeeded: 1,
            failed: 0,
            recorded: false,
            completedBy: undefined,
            firstFailed: undefined
          })
          yield* record("m2", true)
          // the last member completes the group, and the record keeps who did
          assert.deepStrictEqual(yield* record("m3", true), {
            succeeded: 3,
            failed: 0,
            recorded: true,
            completedBy: "m3",
            firstFailed: undefined
          })
          assert.strictEqual((yield* record("m2", true)).completedBy, "m3")
        }))

      it.effect("keeps the first failed member; a group with a failure never completes", () =>
        Effect.gen(function*() {
          const broker = yield* Broker
          const group = `group-${randomUUID()}`
          const record = (member: string, succeeded: boolean) =>
            broker.recordGroupMember(group, member, succeeded, 3, "1 hour")
          yield* record("m1", true)
          assert.strictEqual((yield* record("m2", false)).firstFailed, "m2")
          const last = yield* record("m3", false)
          assert.deepStrictEqual(last, {
            succeeded: 1,
            failed: 2,
            recorded: true,
            completedBy: undefined,
            firstFailed: "m2"
          })
        }))

      it.effect("keeps groups apart", () =>
        Effect.gen(function*() {
          const broker = yield* Broker
          const [a, b] = [`group-${randomUUID()}`, `group-${randomUUID()}`]
          yield* broker.recordGroupMember(a, "m1", true, 1, "1 hour")
          const other = yield* broker.recordGroupMember(b, "m1", false, 1, "1 hour")
          assert.deepStrictEqual([other.succeeded, other.failed, other.recorded], [0, 1, true])
        }))

      it.effect("completes exactly once under concurrent records of every member, twice each", () =>
        Effect.gen(function*() {
          const broker = yield* Broker
          const group = `group-${randomUUID()}`
          const members = Array.from({ length: 50 }, (_, i) => `m${i}`)
          const counts = yield* Effect.forEach(
            [...members, ...members],
            (member) => broker.recordGroupMember(group, member, true, 50, "1 hour"),
            { concurrency: 16 }
          )
          assert.strictEqual(counts.filter((count) => count.recorded).length, 50)
          const completers = new Set(
            counts.flatMap((count) => count.completedBy === undefined ? [] : [count.completedBy])
          )
          assert.strictEqual(completers.size, 1)
        }))
    })

    describe("validation and accounting", () => {
      it.effect("rejects a priority out of range, an eta that is not finite, or limits that are not usable", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const bad: ReadonlyArray<[string, Partial<Outgoing>, string]> = [
            ["fraction", { priority: 1.5 }, "priority"],
            ["NaN", { priority: Number.NaN }, "priority"],
            ["too high", { priority: maxPriority + 1 }, "priority"],
            ["too low", { priority: -maxPriority - 1 }, "priority"],
            ["infinite", { priority: Infinity }, "priority"],
            ["eta NaN", { eta: Number.NaN }, "eta"],
            ["eta infinite", { eta: Infinity }, "eta"],
            ["rate limit 0", { limits: { rate: { key: "k", limit: 0, windowMillis: 1_000 } } }, "limits"],
            ["rate window NaN", { limits: { rate: { key: "k", limit: 5, windowMillis: Number.NaN } } }, "limits"],
            ["concurrency 1.5", { limits: { concurrency: { key: "k", limit: 1.5 } } }, "limits"],
            ["concurrency key empty", { limits: { concurrency: { key: "", limit: 2 } } }, "limits"],
            ["concurrency key NUL", { limits: { concurrency: { key: "a\u0000b", limit: 2 } } }, "limits"]
          ]
          for (const [label, override, field] of bad) {
            const valid = yield* q.message("valid")
            const invalid = { ...(yield* q.message(label)), ...override }
            // a batch with one invalid message enqueues nothing
            const error = yield* Effect.flip(q.broker.enqueue([valid, invalid]))
            assert.strictEqual(error._tag, "BrokerError", label)
            assert.strictEqual(error.operation, "enqueue", label)
            assert.include(error.message, `"${field}"`, label)
            assert.strictEqual(error.applied, "no", label)
            assert.deepStrictEqual(yield* q.stats, zero, label)
          }
        }))

      it.effect("accepts the extreme priorities, and takes them in order", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([
            q.message("max", { priority: maxPriority }),
            q.message("zero"),
            q.message("min", { priority: -maxPriority })
          ])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 3 })), ["min", "zero", "max"])
        }))

      it.effect("a dead letter counts handler runs: a message dead-lettered unrun adds none", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("ran-once")])
          const now = yield* Clock.currentTimeMillis
          // Given a message whose handler failed once and was retried
          yield* q.broker.settle([retry(yield* q.takeOne(), now, boom)])
          // When it is dead-lettered unrun (say, too old) at its next delivery
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom, false)])
          // And another is dead-lettered unrun at its first delivery
          yield* q.enqueue([q.message("never-ran")])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom, false)])
          // Then the dead letters count the one run, and none
          const letters = yield* q.broker.deadLetters(q.queue)
          assert.deepStrictEqual(
            letters.map((letter) => [q.deadLabels([letter])[0], letter.attempts]),
            [["ran-once", 1], ["never-ran", 0]]
          )
        }))

      it.effect("counts lost leases in deliveries, and releases not: deliveries - 1 - attempts", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          // a lease that lapses is a lost lease
          yield* q.takeOne({ lease: 1_000 })
          yield* TestClock.adjust(1_001)
          const second = yield* q.takeOne({ lease: 1_000 })
          assert.strictEqual(second.deliveries - 1 - second.attempts, 1)
          // a release is not
          yield* q.broker.settle([release(second)])
          const third = yield* q.takeOne()
          assert.strictEqual(third.deliveries - 1 - third.attempts, 1)
        }))
    })

    describe("idempotency keys and cancel", () => {
      it.effect("a key suppresses a second message while the first is ready, delayed or running", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          // ready
          assert.deepStrictEqual(yield* q.duplicates([q.message("a", { key: "k1", keyTtl: 0 })]), [])
          assert.deepStrictEqual(yield* q.duplicates([q.message("a2", { key: "k1", keyTtl: 0 })]), [["a2", "a"]])
          // delayed
          yield* q.enqueue([q.message("d", { key: "k2", delay: 5_000 })])
          assert.deepStrictEqual(yield* q.duplicates([q.message("d2", { key: "k2" })]), [["d2", "d"]])
          // running
          const running = yield* q.takeOne()
          assert.strictEqual(q.labels({ deliveries: [running], rejected: [] })[0], "a")
          assert.deepStrictEqual(yield* q.duplicates([q.message("a3", { key: "k1" })]), [["a3", "a"]])
          // still held when it is retried, or its lease lapses
          const now = yield* Clock.currentTimeMillis
          yield* q.broker.settle([retry(running, now + 1_000, boom)])
          assert.deepStrictEqual(yield* q.duplicates([q.message("a4", { key: "k1" })]), [["a4", "a"]])
          yield* TestClock.adjust(1_000)
          yield* q.takeOne({ lease: 1_000 })
          yield* TestClock.adjust(1_001)
          assert.deepStrictEqual(yield* q.duplicates([q.message("a5", { key: "k1" })]), [["a5", "a"]])
          // nothing was enqueued by the suppressed messages
          assert.deepStrictEqual(yield* q.stats, { ...zero, ready: 1, delayed: 1 })
        }))

      it.effect("an acked message keeps its key for its window, then lets a new message through", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a", { key: "order-42", keyTtl: 10_000 })])
          yield* q.broker.settle([ack(yield* q.takeOne())])
          yield* TestClock.adjust(9_999)
          assert.deepStrictEqual(yield* q.duplicates([q.message("b", { key: "order-42" })]), [["b", "a"]])
          yield* TestClock.adjust(1)
          assert.deepStrictEqual(yield* q.duplicates([q.message("c", { key: "order-42", keyTtl: 0 })]), [])
          assert.deepStrictEqual(q.labels(yield* q.take()), ["c"])
        }))

      it.effect("a window of 0 releases the key as the message is acked", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a", { key: "k", keyTtl: 0 })])
          yield* q.broker.settle([ack(yield* q.takeOne())])
          assert.deepStrictEqual(yield* q.duplicates([q.message("b", { key: "k" })]), [])
        }))

      it.effect("a dead-lettered message keeps its key for its window, then releases it", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a", { key: "k", keyTtl: 5_000 })])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom)])
          assert.deepStrictEqual(yield* q.duplicates([q.message("b", { key: "k" })]), [["b", "a"]])
          yield* TestClock.adjust(5_000)
          assert.deepStrictEqual(yield* q.duplicates([q.message("c", { key: "k" })]), [])
        }))

      it.effect("a stale settlement does not end the key's hold", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a", { key: "k", keyTtl: 0 })])
          const stale = yield* q.takeOne({ lease: 1_000 })
          yield* TestClock.adjust(1_001)
          yield* q.takeOne()
          assert.deepStrictEqual(yield* q.broker.settle([ack(stale)]), [stale.id])
          assert.deepStrictEqual(yield* q.duplicates([q.message("b", { key: "k" })]), [["b", "a"]])
        }))

      it.effect("keys are per queue", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const other = yield* fixture
          yield* q.enqueue([q.message("a", { key: "shared" })])
          assert.deepStrictEqual(yield* other.duplicates([other.message("b", { key: "shared" })]), [])
          assert.deepStrictEqual(other.labels(yield* other.take()), ["b"])
        }))

      it.effect("within one batch the first message with a key wins, and the batch keeps its order", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const suppressed = yield* q.duplicates([
            q.message("plain-1"),
            q.message("a", { key: "k" }),
            q.message("plain-2"),
            q.message("b", { key: "k" }),
            q.message("c", { key: "other" })
          ])
          assert.deepStrictEqual(suppressed, [["b", "a"]])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["plain-1", "a", "plain-2", "c"])
        }))

      it.effect("cancels ready and delayed messages, leaves running ones, and reports unknown ids", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("running"), q.message("ready"), q.message("high", { priority: -1 })])
          yield* q.enqueue([q.message("delayed", { delay: 5_000 }), q.message("low", { priority: 3 })])
          const running = yield* q.takeOne()
          assert.strictEqual(q.labels({ deliveries: [running], rejected: [] })[0], "high")
          yield* q.enqueue([q.message("high-2", { priority: -1 })])
          assert.deepStrictEqual(
            yield* q.cancel(["ready", "delayed", "high", "low", "unknown"]),
            ["cancelled", "cancelled", "running", "cancelled", "notFound"]
          )
          // cancelling again finds nothing
          assert.deepStrictEqual(yield* q.cancel(["ready"]), ["notFound"])
          assert.deepStrictEqual(yield* q.stats, { ...zero, ready: 2, inFlight: 1 })
          yield* TestClock.adjust(5_000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["high-2", "running"])
          // the running message is untouched: its ack applies
          assert.deepStrictEqual(yield* q.broker.settle([ack(running)]), [])
        }))

      it.effect("cancels a retried message waiting for its backoff", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          const now = yield* Clock.currentTimeMillis
          yield* q.broker.settle([retry(yield* q.takeOne(), now + 10_000, boom)])
          assert.deepStrictEqual(yield* q.cancel(["a"]), ["cancelled"])
          yield* TestClock.adjust(10_000)
          assert.deepStrictEqual(yield* q.stats, zero)
        }))

      it.effect("cancelling releases the key at once", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a", { key: "k", keyTtl: 60_000, delay: 60_000 })])
          assert.deepStrictEqual(yield* q.cancel(["a"]), ["cancelled"])
          assert.deepStrictEqual(yield* q.duplicates([q.message("b", { key: "k" })]), [])
          assert.deepStrictEqual(q.labels(yield* q.take()), ["b"])
        }))

      it.effect("cancels a message whose lease lapsed (it is queued again)", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a")])
          yield* q.takeOne({ lease: 1_000 })
          yield* TestClock.adjust(1_001)
          assert.deepStrictEqual(yield* q.cancel(["a"]), ["cancelled"])
          assert.deepStrictEqual(yield* q.stats, zero)
        }))

      it.effect("rejects a malformed key or window, enqueueing nothing of the batch", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const bad: ReadonlyArray<[string, Partial<Outgoing>, string]> = [
            ["empty", { key: "" }, "key"],
            ["space", { key: "a b" }, "key"],
            ["quote", { key: "a\"b" }, "key"],
            ["too long", { key: "k".repeat(257) }, "key"],
            ["ttl negative", { key: "k", keyTtl: -1 }, "keyTtl"],
            ["ttl NaN", { key: "k", keyTtl: Number.NaN }, "keyTtl"],
            ["ttl infinite", { key: "k", keyTtl: Infinity }, "keyTtl"]
          ]
          for (const [label, override, field] of bad) {
            const valid = yield* q.message("valid", { key: "fine" })
            const invalid = { ...(yield* q.message(label)), ...override }
            const error = yield* Effect.flip(q.broker.enqueue([valid, invalid]))
            assert.strictEqual(error._tag, "BrokerError", label)
            assert.strictEqual(error.operation, "enqueue", label)
            assert.include(error.message, `"${field}"`, label)
            assert.strictEqual(error.applied, "no", label)
            assert.deepStrictEqual(yield* q.stats, zero, label)
          }
          // the longest key is accepted
          assert.deepStrictEqual(yield* q.duplicates([q.message("long", { key: "k".repeat(256) })]), [])
        }))

      it.effect("flush forgets the queue's keys", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          yield* q.enqueue([q.message("a", { key: "k" })])
          yield* q.broker.flush(q.queue)
          assert.deepStrictEqual(yield* q.duplicates([q.message("b", { key: "k" })]), [])
        }))
    })

    describe("message ids", () => {
      /** Ids outside the grammar (`Message.isMessageId`): empty, too long, a quote, a backslash, a control, non-ASCII. */
      const invalidIds = ["", "x".repeat(256), "a\tb", "a\"b", "a\\b", "a\nb", "caf\u00e9", "\u{1F600}", "\u0000"]

      it.effect("refuses a batch holding an id outside the grammar, enqueuing none of it, on any queue", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const other = yield* fixture
          for (const bad of invalidIds) {
            // Given a batch of 1,500 valid messages on two queues, and one whose id is invalid at its end
            const valid = [
              ...Array.from({ length: 1_000 }, (_, i) => q.message(`m${i}`)),
              ...Array.from({ length: 500 }, (_, i) => other.message(`m${i}`))
            ]
            const invalid = Effect.map(other.message("bad"), (message) => ({ ...message, id: bad }))
            const error = yield* Effect.flip(q.enqueue([...valid, invalid]))
            // Then the broker fails with a BrokerError caused by InvalidMessageId, naming the id and its queue
            assert.strictEqual(error._tag, "BrokerError")
            assert.strictEqual(error.operation, "enqueue")
            assert.strictEqual(error.applied, "no")
            assert.instanceOf(error.cause, InvalidMessageId)
            assert.strictEqual((error.cause as InvalidMessageId).messageId, bad)
            assert.strictEqual((error.cause as InvalidMessageId).queue, other.queue)
            assert.strictEqual(error.message, (error.cause as InvalidMessageId).message)
            // And nothing was enqueued, on either queue
            assert.deepStrictEqual(yield* q.stats, zero)
            assert.deepStrictEqual(yield* other.stats, zero)
          }
        }))

      it.effect("hands back every id the grammar allows unchanged, and acks it", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          let printable = " !"
          for (let code = 0x23; code <= 0x7e; code++) if (code !== 0x5c) printable += String.fromCharCode(code)
          // Every allowed character, the longest id, and ids that look like JSON, Lua patterns, escapes or tokens
          const ids = [
            printable,
            "z".repeat(255),
            "%",
            "[",
            "]",
            "^",
            "-",
            "{",
            "}",
            "}{",
            "#[0,0,1,",
            "!",
            "#",
            "u0041"
          ]
          const messages = ids.map((id, i) =>
            Effect.map(q.message(`m${i}`), (message) => ({ ...message, id, body: { id, n: i } }))
          )
          yield* q.enqueue(messages)
          const taken = yield* q.take({ max: 100 })
          assert.deepStrictEqual(taken.deliveries.map((delivery) => delivery.id), ids)
          assert.deepStrictEqual(taken.deliveries.map((delivery) => delivery.body), ids.map((id, n) => ({ id, n })))
          // A retry rewrites the message (with attempts and the error): the id survives it too
          const retried = yield* q.take({ max: 100, settle: taken.deliveries.map((d) => retry(d, 0, boom)) })
          assert.deepStrictEqual(retried.rejected, [])
          assert.deepStrictEqual(retried.deliveries.map((delivery) => delivery.id), ids)
          assert.deepStrictEqual(retried.deliveries.map((delivery) => delivery.attempts), ids.map(() => 1))
          assert.deepStrictEqual(yield* q.broker.settle(retried.deliveries.map(ack)), [])
          assert.deepStrictEqual(yield* q.stats, zero)
        }))
    })

    describe("queues", () => {
      it.effect("lists the queues messages were enqueued to, sorted, until they are flushed", () =>
        Effect.gen(function*() {
          const a = yield* fixture
          const b = yield* fixture
          yield* b.enqueue([b.message("x")])
          yield* a.enqueue([a.message("y", { delay: 1_000 })])
          const listed = yield* a.broker.queues
          assert.deepStrictEqual(
            listed.filter((queue) => queue === a.queue || queue === b.queue),
            [a.queue, b.queue].sort()
          )
          assert.deepStrictEqual([...listed].sort(), listed)
          yield* a.broker.flush(a.queue)
          assert.notInclude(yield* a.broker.queues, a.queue)
          assert.include(yield* a.broker.queues, b.queue)
          // enqueued again after a flush: listed again
          yield* a.enqueue([a.message("z")])
          assert.include(yield* a.broker.queues, a.queue)
        }))
    })

    describe("claimSlot", () => {
      it.effect("enqueues a slot's message once, and never for a slot at or before the last claimed one", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const claim = (slot: number, label: string) =>
            Effect.flatMap(q.message(label), (message) => q.broker.claimSlot("nightly", slot, message))
          assert.isTrue(yield* claim(60_000, "first"))
          assert.isFalse(yield* claim(60_000, "duplicate"))
          assert.isFalse(yield* claim(0, "older"))
          assert.isTrue(yield* claim(120_000, "second"))
          // another schedule on the same queue has slots of its own
          assert.isTrue(yield* Effect.flatMap(q.message("other"), (m) => q.broker.claimSlot("hourly", 60_000, m)))
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["first", "second", "other"])
        }))

      it.effect("concurrent claims of one slot enqueue exactly one message", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const claims = yield* Effect.all(
            Array.from({ length: 10 }, (_, i) =>
              Effect.flatMap(q.message(`m${i}`), (message) =>
                q.broker.claimSlot("every-second", 1_000, message))),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(
            claims.filter((claimed) =>
              claimed
            ).length,
            1
          )
          assert.deepStrictEqual(yield* q.stats, { ready: 1, delayed: 0, inFlight: 0, dead: 0 })
        }))

      it.effect("refuses an invalid message as enqueue does, and claims nothing", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const badId = yield* Effect.map(q.message("bad id"), (m) => ({ ...m, id: "a\"b" }))
          const badLimits = yield* Effect.map(q.message("bad limits"), (m) => ({
            ...m,
            limits: { concurrency: { key: "k", limit: 0 } }
          }))
          for (const bad of [badId, badLimits]) {
            const error = yield* Effect.flip(q.broker.claimSlot("checked", 1_000, bad))
            assert.strictEqual(error._tag, "BrokerError")
            assert.strictEqual(error.operation, "claimSlot")
            assert.strictEqual(error.applied, "no")
          }
          assert.deepStrictEqual(yield* q.stats, zero)
          // the slot was not claimed: a valid message claims it
          assert.isTrue(yield* Effect.flatMap(q.message("ok"), (m) => q.broker.claimSlot("checked", 1_000, m)))
        }))

      it.effect("a claimed slot stays claimed after the queue is flushed", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          assert.isTrue(yield* Effect.flatMap(q.message("a"), (m) => q.broker.claimSlot("kept", 5_000, m)))
          yield* q.broker.flush(q.queue)
          assert.isFalse(yield* Effect.flatMap(q.message("b"), (m) => q.broker.claimSlot("kept", 5_000, m)))
          assert.deepStrictEqual(yield* q.stats, zero)
        }))
    })

    describe("limits", () => {
      const limited = (q: Fixture, label: string, limits: Limits) =>
        Effect.map(q.message(label), (message): Outgoing => ({ ...message, limits }))

      it.effect("takes at most `rate.limit` messages of a key per sliding window; the others wait, unburned", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const rate = { key: `${q.queue}/r`, limit: 2, windowMillis: 1_000 }
          yield* q.enqueue(["a", "b", "c", "d", "e"].map((label) => limited(q, label, { rate })))
          yield* q.enqueue([q.message("free")]) // no limit: never held back
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["a", "b", "free"])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 3, inFlight: 3, dead: 0 })
          yield* TestClock.adjust(500)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), [])
          yield* TestClock.adjust(500)
          const next = (yield* q.take({ max: 10 })).deliveries
          assert.strictEqual(next.length, 2)
          // held back is not a delivery, nor an attempt
          assert.deepStrictEqual(next.map((d) => [d.attempts, d.deliveries]), [[0, 1], [0, 1]])
          yield* TestClock.adjust(1_000)
          assert.strictEqual((yield* q.take({ max: 10 })).deliveries.length, 1)
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 6, dead: 0 })
        }))

      it.effect("keeps at most `concurrency.limit` messages of a key in flight; a settlement frees the slot", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const key = (k: string) => ({ concurrency: { key: `${q.queue}/${k}`, limit: 1 } })
          yield* q.enqueue([
            limited(q, "a1", key("a")),
            limited(q, "a2", key("a")),
            limited(q, "b1", key("b")),
            limited(q, "a3", key("a"))
          ])
          const first = (yield* q.take({ max: 10 })).deliveries
          assert.deepStrictEqual(q.labels({ deliveries: first, rejected: [] }), ["a1", "b1"])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 2, inFlight: 2, dead: 0 })
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), [])
          yield* q.broker.settle([ack(first[0]!)])
          const second = yield* q.take({ max: 10 })
          assert.deepStrictEqual(q.labels(second), ["a2"])
          assert.deepStrictEqual(second.deliveries.map((d) => [d.attempts, d.deliveries]), [[0, 1]])
          // a retry frees the slot too
          yield* q.broker.settle([retry(second.deliveries[0]!, (yield* Clock.currentTimeMillis) + 5_000, boom)])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["a3"])
        }))

      it.effect("a dead letter keeps its limits when it is requeued", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const limits = { concurrency: { key: `${q.queue}/k`, limit: 1 } }
          yield* q.enqueue([limited(q, "dead", limits)])
          yield* q.broker.settle([deadLetter(yield* q.takeOne(), boom)])
          yield* q.enqueue([limited(q, "running", limits)])
          const running = yield* q.takeOne()
          assert.strictEqual(yield* q.broker.requeueDeadLetters(q.queue), 1)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), []) // its key's slot is taken
          yield* q.broker.settle([ack(running)])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["dead"])
        }))

      it.effect("a lapsed lease gives its concurrency slot back", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const limits = { concurrency: { key: `${q.queue}/k`, limit: 1 } }
          yield* q.enqueue([limited(q, "held", limits), limited(q, "waiting", limits)])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10, lease: 1_000 })), ["held"])
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), [])
          yield* TestClock.adjust(1_000) // the worker holding it died: its lease lapses
          const taken = yield* q.take({ max: 10 })
          assert.strictEqual(taken.deliveries.length, 1)
          yield* q.broker.settle(taken.deliveries.map(ack))
          assert.strictEqual((yield* q.take({ max: 10 })).deliveries.length, 1)
        }))
    })

    describe("idempotency keys with limits and ties", () => {
      const keyed = (q: Fixture, label: string, key: string, limits: Limits) =>
        Effect.map(q.message(label, { key }), (message): Outgoing => ({ ...message, limits }))

      it.effect("a message waiting for its concurrency slot or rate window holds its key, and cancel removes it", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const concurrency = { key: `${q.queue}/c`, limit: 1 }
          const rate = { key: `${q.queue}/r`, limit: 1, windowMillis: 10_000 }
          yield* q.enqueue([
            keyed(q, "running", "k-running", { concurrency }),
            keyed(q, "parked", "k-parked", { concurrency }),
            keyed(q, "rated", "k-rated", { rate }),
            keyed(q, "rate-waiting", "k-rate-waiting", { rate })
          ])
          const running = yield* q.take({ max: 10 })
          assert.deepStrictEqual(q.labels(running), ["running", "rated"])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 2, inFlight: 2, dead: 0 })
          // held while they wait; a suppressed message with limits stores nothing
          assert.deepStrictEqual(
            yield* q.duplicates([
              keyed(q, "dup-parked", "k-parked", { concurrency }),
              q.message("dup-rate-waiting", { key: "k-rate-waiting" })
            ]),
            [["dup-parked", "parked"], ["dup-rate-waiting", "rate-waiting"]]
          )
          assert.deepStrictEqual(yield* q.cancel(["parked", "rate-waiting"]), ["cancelled", "cancelled"])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 2, dead: 0 })
          // their keys are free; the slot they waited for frees with nothing parked behind it
          assert.deepStrictEqual(yield* q.duplicates([q.message("again", { key: "k-parked" })]), [])
          yield* q.broker.settle(running.deliveries.map(ack))
          yield* TestClock.adjust(10_000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["again"])
          assert.deepStrictEqual(yield* q.stats, { ready: 0, delayed: 0, inFlight: 1, dead: 0 })
        }))

      it.effect("a message keeps its key through a release and a wait in the parked set, and its ack ends it", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          const concurrency = { key: `${q.queue}/c`, limit: 1 }
          yield* q.enqueue([keyed(q, "a", "k-a", { concurrency })])
          yield* q.broker.settle([release(yield* q.takeOne())])
          assert.deepStrictEqual(yield* q.duplicates([q.message("a2", { key: "k-a" })]), [["a2", "a"]])
          yield* q.broker.settle([ack(yield* q.takeOne())])
          // its key (window 0) ended with its ack: the key went through the release with it
          assert.deepStrictEqual(yield* q.duplicates([q.message("a3", { key: "k-a" })]), [])
          yield* q.broker.settle([ack(yield* q.takeOne())])
          // parked behind another message of its concurrency key, then made ready again by that one's ack
          yield* q.enqueue([
            Effect.map(q.message("holder"), (message): Outgoing => ({ ...message, limits: { concurrency } })),
            keyed(q, "b", "k-b", { concurrency })
          ])
          const holder = yield* q.take({ max: 10 })
          assert.deepStrictEqual(q.labels(holder), ["holder"])
          assert.deepStrictEqual(yield* q.duplicates([q.message("b2", { key: "k-b" })]), [["b2", "b"]])
          yield* q.broker.settle(holder.deliveries.map(ack))
          const b = yield* q.take({ max: 10 })
          assert.deepStrictEqual(q.labels(b), ["b"])
          assert.deepStrictEqual(yield* q.duplicates([q.message("b3", { key: "k-b" })]), [["b3", "b"]])
          yield* q.broker.settle(b.deliveries.map(ack))
          assert.deepStrictEqual(yield* q.duplicates([q.message("b4", { key: "k-b" })]), [])
        }))

      it.effect("keyed and unkeyed messages due at the same eta keep the order they were sent in", () =>
        Effect.gen(function*() {
          const q = yield* fixture
          // labels in descending order, so neither ids nor element headers can sort them right by accident
          yield* q.enqueue([
            q.message("z", { key: "k-z", delay: 1_000 }),
            q.message("y", { delay: 1_000 }),
            q.message("x", { key: "k-x", delay: 1_000 })
          ])
          yield* q.enqueue([q.message("w", { key: "k-w", delay: 1_000 })])
          yield* q.enqueue([q.message("v", { delay: 1_000 })])
          yield* TestClock.adjust(1_000)
          assert.deepStrictEqual(q.labels(yield* q.take({ max: 10 })), ["z", "y", "x", "w", "v"])
        }))
    })
  })

  layer(brokerLayer, { excludeTestServices: true })(`${name} broker conformance (live clock)`, (it) => {
    // Real time on a possibly loaded machine: see `longWait` and `wokenWithin`. The short sleeps only give a forked
    // take time to start waiting; when it has not yet, the case is still valid (the message is then there first).

    it.effect("a waiting take wakes up when a message is enqueued", () =>
      Effect.gen(function*() {
        const q = yield* fixture
        const waiting = yield* Effect.forkChild(q.take({ wait: longWait }))
        yield* Effect.sleep(50)
        const sentAt = yield* Clock.currentTimeMillis
        yield* q.enqueue([q.message("a")])
        const taken = yield* Fiber.join(waiting)
        assert.deepStrictEqual(q.labels(taken), ["a"])
        // Woken by the enqueue, not when its wait ran out
        assert.isBelow((yield* Clock.currentTimeMillis) - sentAt, wokenWithin)
      }))

    it.effect("a waiting take on an empty queue returns nothing once its wait is over", () =>
      Effect.gen(function*() {
        const q = yield* fixture
        const start = yield* Clock.currentTimeMillis
        const taken = yield* q.take({ wait: 100 })
        const elapsed = (yield* Clock.currentTimeMillis) - start
        assert.deepStrictEqual(taken, { deliveries: [], rejected: [] })
        // It waited (timers never fire early; 10 ms of slack for clock granularity) ...
        assert.isAtLeast(elapsed, 90)
        // ... and the end of its wait ended it (it did not hang)
        assert.isBelow(elapsed, wokenWithin)
      }))

    it.effect("a waiting take wakes up when a delayed message comes due, not before", () =>
      Effect.gen(function*() {
        const q = yield* fixture
        const start = yield* Clock.currentTimeMillis
        yield* q.enqueue([q.message("later", { delay: 200 })])
        const taken = yield* q.take({ wait: longWait })
        const elapsed = (yield* Clock.currentTimeMillis) - start
        assert.deepStrictEqual(q.labels(taken), ["later"])
        assert.isAtLeast(elapsed, 190)
        // Woken when it came due, not when its wait ran out
        assert.isBelow(elapsed, wokenWithin)
      }))

    it.effect("a waiting take wakes up when a message delayed after it started waiting comes due", () =>
      Effect.gen(function*() {
        const q = yield* fixture
        const waiting = yield* Effect.forkChild(q.take({ wait: longWait }))
        yield* Effect.sleep(30)
        const sentAt = yield* Clock.currentTimeMillis
        yield* q.enqueue([q.message("later", { delay: 150 })])
        const taken = yield* Fiber.join(waiting)
        const elapsed = (yield* Clock.currentTimeMillis) - sentAt
        assert.deepStrictEqual(q.labels(taken), ["later"])
        assert.isAtLeast(elapsed, 140)
        // Woken when it came due, not when its wait ran out
        assert.isBelow(elapsed, wokenWithin)
      }))

    it.effect("a waiting take wakes up when another consumer releases or retries a message", () =>
      Effect.gen(function*() {
        const q = yield* fixture
        yield* q.enqueue([q.message("a")])
        const first = yield* q.takeOne()
        // Released
        const waitingForRelease = yield* Effect.forkChild(q.take({ wait: longWait }))
        yield* Effect.sleep(30)
        const releasedAt = yield* Clock.currentTimeMillis
        assert.deepStrictEqual(yield* q.broker.settle([release(first)]), [])
        const second = (yield* Fiber.join(waitingForRelease)).deliveries[0]
        assert.strictEqual(second?.id, first.id)
        assert.isBelow((yield* Clock.currentTimeMillis) - releasedAt, wokenWithin)
        // Retried, due at once
        const waitingForRetry = yield* Effect.forkChild(q.take({ wait: longWait }))
        yield* Effect.sleep(30)
        const now = yield* Clock.currentTimeMillis
        assert.deepStrictEqual(yield* q.broker.settle([retry(second!, now, boom)]), [])
        const third = (yield* Fiber.join(waitingForRetry)).deliveries[0]
        assert.strictEqual(third?.id, first.id)
        assert.strictEqual(third?.attempts, 1)
        assert.isBelow((yield* Clock.currentTimeMillis) - now, wokenWithin)
      }))

    it.effect("one message wakes one of several waiting takes, and is delivered once", () =>
      Effect.gen(function*() {
        const q = yield* fixture
        const waiting = yield* Effect.all(
          Array.from({ length: 3 }, () => Effect.forkChild(q.take({ wait: longWait })))
        )
        yield* Effect.sleep(30)
        yield* q.enqueue([q.message("a")])
        // The first take to return has it ...
        assert.deepStrictEqual(q.labels(yield* Effect.raceAll(waiting.map(Fiber.join))), ["a"])
        // ... and the two others were not sent home empty-handed: they still wait, and get one message each
        yield* q.enqueue([q.message("b"), q.message("c")])
        const taken = yield* Effect.all(waiting.map(Fiber.join))
        assert.deepStrictEqual(taken.flatMap((taken) => q.labels(taken)).sort(), ["a", "b", "c"])
      }))

    it.effect("a waiting take is interruptible and takes nothing with it", () =>
      Effect.gen(function*() {
        const q = yield* fixture
        const waiting = yield* Effect.forkChild(q.take({ wait: longWait }))
        yield* Effect.sleep(30)
        const [interruptedIn] = yield* Effect.timed(Fiber.interrupt(waiting))
        // The interruption ends the wait, rather than the wait running out
        assert.isBelow(Duration.toMillis(interruptedIn), wokenWithin)
        yield* q.enqueue([q.message("a")])
        assert.deepStrictEqual(q.labels(yield* q.take()), ["a"])
      }))
  })
}

// -------------------------------------------------------------------------------------------------------------------
// fixtures

const zero: QueueStats = { ready: 0, delayed: 0, inFlight: 0, dead: 0 }

/**
 * How long live-clock takes wait: far longer than any wake-up should take, so that a take woken by an event is told
 * apart from one that returned because its wait ran out.
 */
const longWait = "10 seconds"

/**
 * The upper bound of a live-clock wake-up, in milliseconds (1–5 ms on an idle machine; a loaded 2-core machine may not
 * schedule a process for a second or more). Generous, yet half of `longWait`, so it still proves that the event, not the
 * end of the wait, ended the take.
 */
const wokenWithin = 5_000

const boom: LastError = { tag: "Boom", message: "boom" }

const ack = (delivery: Delivery): Settlement => ({ _tag: "Ack", delivery })
const retry = (delivery: Delivery, eta: number, error: LastError): Settlement => ({
  _tag: "Retry",
  delivery,
  eta,
  error
})
const deadLetter = (delivery: Delivery, reason: LastError, ran?: boolean): Settlement =>
  ran === undefined ? { _tag: "DeadLetter", delivery, reason } : { _tag: "DeadLetter", delivery, reason, ran }
const release = (delivery: Delivery): Settlement => ({ _tag: "Release", delivery })

/** `n` labels in descending byte order (`m099`, …, `m000`): sent in this order, send order is not id order. */
const descending = (n: number): Array<string> =>
  Array.from({ length: n }, (_, i) => `m${String(n - 1 - i).padStart(3, "0")}`)

/** The odd positions, then the even ones: an order that is neither the original one nor its reverse. */
const interleaved = <A>(items: ReadonlyArray<A>): Array<A> => [
  ...items.filter((_, i) => i % 2 === 1),
  ...items.filter((_, i) => i % 2 === 0)
]

/** Enqueues messages ready at once and takes them all, in send order. */
const takeAllOf = (q: Fixture, labels: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    yield* q.enqueue(labels.map((label) => q.message(label)))
    const taken = yield* q.take({ max: labels.length })
    assert.deepStrictEqual(q.labels(taken), labels)
    return taken.deliveries
  })

interface MessageOptions {
  readonly priority?: number | undefined
  /** Milliseconds from now; negative means overdue. */
  readonly delay?: number | undefined
  readonly body?: unknown
  /** An idempotency key, and its window in milliseconds. */
  readonly key?: string | undefined
  readonly keyTtl?: number | undefined
}

/** One test's queue, with helpers that name messages by a short label. */
interface Fixture {
  readonly broker: Broker["Service"]
  readonly queue: string
  readonly id: (label: string) => string
  readonly message: (label: string, options?: MessageOptions) => Effect.Effect<Outgoing>
  readonly enqueue: (messages: ReadonlyArray<Effect.Effect<Outgoing>>) => Effect.Effect<Enqueued, BrokerError>
  /** Enqueues messages and returns the labels of those suppressed by their key, with the label of the holder. */
  readonly duplicates: (
    messages: ReadonlyArray<Effect.Effect<Outgoing>>
  ) => Effect.Effect<Array<[string, string]>, BrokerError>
  /** Cancels messages by label. */
  readonly cancel: (labels: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<CancelOutcome>, BrokerError>
  readonly take: (request?: Partial<Omit<TakeRequest, "queue">>) => Effect.Effect<Taken, BrokerError>
  /** Takes exactly one message, failing the test if there is none. */
  readonly takeOne: (request?: Partial<Omit<TakeRequest, "queue" | "max">>) => Effect.Effect<Delivery, BrokerError>
  readonly labels: (taken: Taken) => Array<string>
  readonly deadLabels: (deadLetters: ReadonlyArray<{ readonly id: string }>) => Array<string>
  /** Enqueues, takes and dead-letters messages one by one, one second apart. */
  readonly deadLetterAll: (labels: ReadonlyArray<string>) => Effect.Effect<void, BrokerError>
  readonly stats: Effect.Effect<QueueStats, BrokerError>
}

/** A fresh queue with a random name, flushed when the test ends. */
const fixture: Effect.Effect<Fixture, never, Broker | Scope.Scope> = Effect.gen(function*() {
  const broker = yield* Broker
  const queue = `conformance-${randomUUID()}`
  yield* Effect.addFinalizer(() => Effect.ignore(broker.flush(queue)))
  const prefix = `${queue}/`
  const label = (id: string) => id.startsWith(prefix) ? id.slice(prefix.length) : id
  const id = (label: string) => prefix + label
  const message = (label: string, options?: MessageOptions) =>
    Effect.map(Clock.currentTimeMillis, (now): Outgoing => ({
      id: id(label),
      queue,
      priority: options?.priority ?? 0,
      eta: now + (options?.delay ?? 0),
      body: options !== undefined && "body" in options ? options.body : { label },
      ...(options?.key === undefined ? {} : { key: options.key }),
      ...(options?.keyTtl === undefined ? {} : { keyTtl: options.keyTtl })
    }))
  const take = (request?: Partial<Omit<TakeRequest, "queue">>) =>
    broker.take({ queue, max: 1, lease: "30 seconds", wait: 0, ...request })
  const self: Fixture = {
    broker,
    queue,
    id,
    message,
    enqueue: (messages) => Effect.flatMap(Effect.all(messages), broker.enqueue),
    duplicates: (messages) =>
      Effect.map(
        Effect.flatMap(Effect.all(messages), broker.enqueue),
        (enqueued) => Array.from(enqueued.duplicates, ([id, holder]): [string, string] => [label(id), label(holder)])
      ),
    cancel: (labels) => broker.cancel(queue, labels.map(id)),
    take,
    takeOne: (request) =>
      Effect.map(take({ ...request, max: 1 }), (taken) => {
        assert.strictEqual(taken.deliveries.length, 1, `expected one message on ${queue}`)
        return taken.deliveries[0]!
      }),
    labels: (taken) => taken.deliveries.map((delivery) => label(delivery.id)),
    deadLabels: (deadLetters) => deadLetters.map((letter) => label(letter.id)),
    deadLetterAll: (labels) =>
      Effect.forEach(labels, (label) =>
        Effect.gen(function*() {
          yield* self.enqueue([message(label)])
          const delivery = yield* self.takeOne()
          yield* broker.settle([deadLetter(delivery, boom)])
          yield* TestClock.adjust(1_000)
        }), { discard: true }),
    stats: broker.stats(queue)
  }
  return self
})
