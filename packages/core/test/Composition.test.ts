/**
 * Composition: pipelines and callbacks, sent by the worker as messages through the broker.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Deferred, Effect, Layer, Ref, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Broker, Group, Pipeline, Worker } from "../src/index.ts"

class PaymentDeclined extends Schema.TaggedError<PaymentDeclined>()("PaymentDeclined", { orderId: Schema.String }) {}

const Order = Schema.Struct({ orderId: Schema.String, amount: Schema.Number })
const Payment = Schema.Struct({ orderId: Schema.String, paymentId: Schema.String })

const createOrder = Actor.make("create_order", {
  queue: "orders",
  payload: Schema.Struct({ cart: Schema.String, amount: Schema.Number }),
  success: Order
})
const processPayment = Actor.make("process_payment", {
  queue: "payments",
  payload: Order,
  success: Payment,
  error: PaymentDeclined,
  throws: ["PaymentDeclined"]
})
const sendConfirmation = Actor.make("send_confirmation", { queue: "email", payload: Payment, success: Schema.String })
const alertAdmin = Actor.make("alert_admin", { queue: "alerts", payload: Actor.FailurePayload })

describe("Pipelines", () => {
  /** The pipeline's handlers, recording what each step was sent. */
  const handlers = (seen: Ref.Ref<ReadonlyArray<string>>, done: Deferred.Deferred<string>) =>
    [
      createOrder.handle(({ amount, cart }) =>
        Effect.as(Ref.update(seen, (all) => [...all, `order ${cart}`]), { orderId: `o-${cart}`, amount })
      ),
      processPayment.handle(({ amount, orderId }) =>
        Effect.andThen(
          Ref.update(seen, (all) => [...all, `pay ${orderId} ${amount}`]),
          amount > 100 ? Effect.fail(new PaymentDeclined({ orderId })) : Effect.succeed({ orderId, paymentId: "p-1" })
        )
      ),
      sendConfirmation.handle(({ orderId, paymentId }) =>
        Effect.andThen(
          Ref.update(seen, (all) => [...all, `confirm ${orderId} ${paymentId}`]),
          Effect.as(Deferred.succeed(done, orderId), "sent")
        )
      ),
      alertAdmin.handle(({ actor, error, messageId }) =>
        Effect.andThen(
          Ref.update(seen, (all) => [...all, `alert ${error.tag} ${messageId === "" ? "" : `for ${actor}`}`]),
          Deferred.succeed(done, `alert ${error.tag}`)
        )
      )
    ] as const

  const withWorker =
    <const H extends ReadonlyArray<Actor.Handler<Actor.Any, unknown>>>(handlers: H) =>
    <A, E, R>(self: Effect.Effect<A, E, R>) =>
      self.pipe(Effect.provide(Worker.layer({ handlers }).pipe(Layer.provideMerge(MemoryBroker.layer))))

  it.effect("runs create order -> process payment -> send confirmation, each step sent the previous result", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const done = yield* Deferred.make<string>()
      yield* Effect.gen(function*() {
        yield* Pipeline.run(yield* createOrder.message({ cart: "c1", amount: 40 }), [processPayment, sendConfirmation])
        assert.strictEqual(yield* Deferred.await(done), "o-c1")
        assert.deepStrictEqual(yield* Ref.get(seen), ["order c1", "pay o-c1 40", "confirm o-c1 p-1"])
      }).pipe(withWorker(handlers(seen, done)))
    }))

  it.effect("a step that fails for good stops the pipeline and sends its onFailure once", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const done = yield* Deferred.make<string>()
      yield* Effect.gen(function*() {
        yield* Pipeline.run(
          yield* createOrder.message({ cart: "c2", amount: 500 }),
          [processPayment, sendConfirmation],
          {
            onFailure: alertAdmin
          }
        )
        assert.strictEqual(yield* Deferred.await(done), "alert PaymentDeclined")
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* Ref.get(seen), [
          "order c2",
          "pay o-c2 500",
          "alert PaymentDeclined for process_payment"
        ])
        assert.strictEqual((yield* MemoryBroker.deadLetters("payments")).length, 1)
      }).pipe(withWorker(handlers(seen, done)))
    }))
})

describe("Callbacks", () => {
  const report = Actor.make("report", {
    queue: "reports",
    payload: Schema.Struct({ total: Schema.Number }),
    success: Schema.Struct({ total: Schema.Number, doubled: Schema.Number }),
    error: Schema.String,
    maxRetries: 1,
    minBackoff: "1 second"
  })
  const onReport = Actor.make("on_report", { queue: "callbacks", payload: Actor.successPayload(report.successSchema) })
  const onReportFailed = Actor.make("on_report_failed", { queue: "callbacks", payload: Actor.FailurePayload })

  it.effect("onSuccess is sent the message id and the typed result; onFailure the id and the error, once", () =>
    Effect.gen(function*() {
      const successes = yield* Ref.make<ReadonlyArray<unknown>>([])
      const failures = yield* Ref.make<ReadonlyArray<unknown>>([])
      const handlers = [
        report.handle(({ total }) =>
          total < 0 ? Effect.fail("negative") : Effect.succeed({ total, doubled: total * 2 })
        ),
        onReport.handle((payload) => Ref.update(successes, (all) => [...all, payload])),
        onReportFailed.handle((payload) => Ref.update(failures, (all) => [...all, payload]))
      ] as const
      yield* Effect.gen(function*() {
        const ok = yield* report.send({ total: 21 }, { onSuccess: onReport, onFailure: onReportFailed })
        const bad = yield* report.send({ total: -1 }, { onSuccess: onReport, onFailure: onReportFailed })
        yield* TestClock.adjust("1 minute") // the failing one is retried once, then dead-lettered
        yield* MemoryBroker.join("callbacks")
        assert.deepStrictEqual(yield* Ref.get(successes), [{ messageId: ok.id, result: { total: 21, doubled: 42 } }])
        const [failure, ...more] = (yield* Ref.get(failures)) as ReadonlyArray<Actor.FailureInfo>
        assert.strictEqual(more.length, 0)
        assert.strictEqual(failure?.messageId, bad.id)
        // and which task it was, so that an alert can say it
        assert.strictEqual(failure?.actor, report.name)
        assert.strictEqual(failure?.queue, report.queue)
        // an untagged error is a defect: its text is kept
        assert.strictEqual(failure?.error.tag, "HandlerDefect")
        assert.include(failure?.error.message, "negative")
      }).pipe(Effect.provide(Worker.layer({ handlers }).pipe(Layer.provideMerge(MemoryBroker.layer))))
    }))
})

describe("Groups", () => {
  const notify = Actor.make("notify", {
    queue: "notify",
    payload: Schema.Struct({ userId: Schema.Number }),
    success: Schema.String,
    error: Schema.String,
    maxRetries: 0,
    storeResults: true
  })
  const summarize = Actor.make("summarize", { queue: "summary", payload: Schema.Struct({ day: Schema.String }) })
  const alertAdmin = Actor.make("alert_group", { queue: "summary", payload: Schema.Struct({ what: Schema.String }) })

  /** notify fails for user 0 (a typed failure), and succeeds for the others; the callbacks record themselves. */
  const handlers = (log: Ref.Ref<ReadonlyArray<string>>) =>
    [
      notify.handle(({ userId }) =>
        userId === 0 ? Effect.fail(`no address for ${userId}`) : Effect.succeed(`notified ${userId}`)
      ),
      summarize.handle(({ day }) => Ref.update(log, (all) => [...all, `summary ${day}`])),
      alertAdmin.handle(({ what }) => Ref.update(log, (all) => [...all, `alert ${what}`]))
    ] as const

  const withWorker = (log: Ref.Ref<ReadonlyArray<string>>) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(Effect.provide(Worker.layer({ handlers: handlers(log) }).pipe(Layer.provideMerge(MemoryBroker.layer))))

  it.effect("fires onComplete once when every member succeeded, and gives the typed results in order", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        const group = yield* Group.run(
          [
            yield* notify.message({ userId: 1 }),
            yield* notify.message({ userId: 2 }),
            yield* notify.message({ userId: 3 })
          ],
          {
            onComplete: yield* summarize.message({ day: "mon" }),
            onFailure: yield* alertAdmin.message({ what: "mon" })
          }
        )
        const results = yield* Group.results(group, { timeout: "1 minute" })
        assert.deepStrictEqual(results, ["notified 1", "notified 2", "notified 3"])
        yield* MemoryBroker.join("summary")
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* Ref.get(log), ["summary mon"])
      }).pipe(withWorker(log))
    }))

  it.effect("a member dead-lettered fires onFailure once and onComplete never", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        yield* Group.run(
          [
            yield* notify.message({ userId: 0 }),
            yield* notify.message({ userId: 2 }),
            yield* notify.message({ userId: 0 })
          ],
          {
            onComplete: yield* summarize.message({ day: "tue" }),
            onFailure: yield* alertAdmin.message({ what: "tue" })
          }
        )
        yield* TestClock.adjust("1 hour")
        yield* MemoryBroker.join("summary")
        // two members failed: one alert, from the first of them; no summary
        assert.deepStrictEqual(yield* Ref.get(log), ["alert tue"])
        assert.strictEqual((yield* MemoryBroker.deadLetters("notify")).length, 2)
      }).pipe(withWorker(log))
    }))

  it.effect("members redelivered after a lost lease complete the group exactly once", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      yield* Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const members = [yield* notify.message({ userId: 1 }), yield* notify.message({ userId: 2 })] as const
        yield* Group.run(members, { onComplete: yield* summarize.message({ day: "wed" }) })
        // a worker took the first member, recorded its success, and died before acking it: its lease lapses
        const taken = yield* broker.take({ queue: "notify", max: 1, lease: "10 seconds" })
        const group = (taken.deliveries[0]!.body as { readonly group: { readonly id: string } }).group
        yield* broker.recordGroupMember(group.id, taken.deliveries[0]!.id, true, 2, "1 hour")
        yield* TestClock.adjust("11 seconds")
        // Then a live worker runs both (the first one again), and the group completes once
        yield* Effect.gen(function*() {
          yield* TestClock.adjust("1 minute")
          yield* MemoryBroker.join("summary")
          assert.deepStrictEqual(yield* Ref.get(log), ["summary wed"])
        }).pipe(Effect.provide(Worker.layer({ handlers: handlers(log) })))
      }).pipe(Effect.provide(MemoryBroker.layer))
    }))
})
