/**
 * `pnpm example`: producer and worker in one process. It sends the example messages, runs them, prints the life of
 * each one (sent, started, retried, succeeded, dead-lettered) and exits when every message has finished.
 *
 * Runs on the in-memory broker, or on Redis when `REDIS_URL` is set.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Broker, Group, type Message, Pipeline, Worker } from "@errand/core"
import { Clock, Console, Deferred, Effect, Exit, Layer, References, Scope } from "effect"
import {
  alertAdmin,
  createOrder,
  generateInvoice,
  notifyUser,
  processPayment,
  sendOrderConfirmation,
  sendReceipt,
  sendReminder,
  sendWelcomeEmail,
  summarizeNotifications,
  syncInventory
} from "./actors.ts"
import { brokerFromEnv } from "./broker.ts"
import { handlers } from "./handlers.ts"
import { MailerConsole, UsersLive } from "./services.ts"

const broker = brokerFromEnv()

const program = Effect.gen(function*() {
  const startedAt = yield* Clock.currentTimeMillis
  const stamp = Effect.map(Clock.currentTimeMillis, (now) => `[+${((now - startedAt) / 1000).toFixed(3)}s]`)
  const say = (line: string) => Effect.flatMap(stamp, (time) => Console.log(`${time} ${line}`))
  const label = (message: Message.Message) => `${message.actor} ${message.id.slice(0, 6)}`

  // The demo ends when each message it sent has succeeded or been dead-lettered (ids are known only after sending,
  // and on a shared Redis older messages may run too, so outcomes are matched by id).
  const sentIds = new Set<string>()
  const finishedIds = new Set<string>()
  let sentAll = false
  // Messages the worker sends itself (pipeline steps, callbacks): 2 per order pipeline, 1 for the group's summary.
  const followUpActors = new Set(["process_payment", "send_receipt", "alert_admin", "summarize_notifications"])
  let followUpsSeen = 0
  const followUpsExpected = 5
  const allDone = yield* Deferred.make<void>()
  const checkDone = Effect.suspend(() =>
    sentAll && followUpsSeen >= followUpsExpected && [...sentIds].every((id) => finishedIds.has(id))
      ? Deferred.succeed(allDone, undefined)
      : Effect.void
  )
  const finished = (id: string) =>
    Effect.suspend(() => {
      finishedIds.add(id)
      return checkDone
    })

  const workerScope = yield* Scope.make()
  yield* Scope.provide(workerScope)(Worker.make({
    handlers,
    concurrency: 4,
    onEvent: (event) => {
      switch (event._tag) {
        case "Started":
          if (followUpActors.has(event.message.actor) && !sentIds.has(event.message.id)) {
            sentIds.add(event.message.id)
            followUpsSeen++
          }
          return say(`▶ started       ${label(event.message)} (attempt ${event.message.attempts + 1})`)
        case "Succeeded":
          return say(`✓ succeeded     ${label(event.message)} in ${event.durationMillis} ms`).pipe(
            Effect.andThen(finished(event.message.id))
          )
        case "Retrying":
          return say(
            `↻ retrying      ${label(event.message)}: ${event.error.tag}; attempt ${
              event.attempts + 1
            } in ${event.delayMillis} ms`
          )
        case "DeadLettered":
          return say(
            `✗ dead-lettered ${
              event.message ? label(event.message) : event.messageId
            }: [${event.reason.tag}] ${event.reason.message}`
          ).pipe(Effect.andThen(finished(event.messageId)))
        case "Released":
          return say(`⏏ released      ${event.messageId}`)
      }
    }
  }))

  yield* Console.log(`Errand demo on the ${broker.name} broker\n`)
  const sent = (message: Message.Message) =>
    Effect.andThen(
      Effect.sync(() => sentIds.add(message.id)),
      say(
        `→ sent          ${label(message)} to "${message.queue}" ${JSON.stringify(message.payload)}${
          message.eta > message.enqueuedAt ? ` (due in ${message.eta - message.enqueuedAt} ms)` : ""
        }`
      )
    )
  yield* Effect.tap(sendWelcomeEmail.send({ userId: 1 }), sent)
  yield* Effect.tap(sendWelcomeEmail.send({ userId: 42 }), sent) // no such user: never retried
  yield* Effect.tap(sendOrderConfirmation.send({ orderId: "o-1001", email: "ada@example.com" }), sent)
  yield* Effect.tap(generateInvoice.send({ orderId: "o-1001", amountCents: 4_250 }), sent)
  yield* Effect.tap(syncInventory.send({ sku: "SKU-7" }), sent) // always fails: retried twice, then dead-lettered
  yield* Effect.tap(sendReminder.send({ userId: 2, note: "Your cart misses you" }, { delay: "1 second" }), sent)

  // The order chain as a typed pipeline: each step is sent the previous step's result. The second card is declined:
  // the pipeline stops there, and alert_admin is told.
  for (const cart of [{ cartId: "c-1", amountCents: 4_250 }, { cartId: "c-2", amountCents: 250_000 }]) {
    const first = yield* createOrder.message({ ...cart, email: "ada@example.com" })
    yield* Effect.tap(Pipeline.run(first, [processPayment, sendReceipt], { onFailure: alertAdmin }), sent)
  }

  // Notifications to users 1..5 as a group: one broker call, and a summary once every one went out.
  const group = yield* Group.run(
    yield* Effect.forEach([1, 2, 3, 4, 5], (userId) => notifyUser.message({ userId })),
    { onComplete: yield* summarizeNotifications.message({ batch: "users 1..5" }) }
  )
  for (const member of group.members) yield* sent(member)

  sentAll = true
  yield* checkDone
  yield* Deferred.await(allDone)
  // every member stores its result: read them back, typed, in order
  const notified = yield* Group.results(group, { timeout: "10 seconds" })
  yield* say(`group results: ${notified.join(", ")}`)
  yield* Scope.close(workerScope, Exit.void) // graceful shutdown: outcomes still in flight are recorded
  const brokerService = yield* Broker.Broker
  for (const queue of ["email", "processing"]) {
    const stats = yield* brokerService.stats(queue)
    yield* Console.log(
      `\nqueue "${queue}": ${stats.ready} ready, ${stats.delayed} delayed, ${stats.inFlight} in flight, ${stats.dead} dead`
    )
    for (const dead of yield* brokerService.deadLetters(queue)) {
      yield* Console.log(
        `  dead letter ${dead.id.slice(0, 6)} after ${dead.attempts} attempt(s): ${dead.reason.message}`
      )
    }
    yield* brokerService.purgeDeadLetters(queue)
  }
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(broker.layer, UsersLive, MailerConsole)),
  Effect.provideService(References.MinimumLogLevel, "None"), // the demo prints events instead of worker logs
  NodeRuntime.runMain
)
