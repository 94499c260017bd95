/**
 * Type-level specification, checked by `pnpm typecheck` (part of `pnpm test`): every `@ts-expect-error` line must
 * fail to compile, or the check fails. This file is never run.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { Actor, type Broker, Pipeline, type Results, Schedules, Worker } from "../src/index.ts"

class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", { userId: Schema.Number }) {}
class Unrelated extends Schema.TaggedError<Unrelated>()("Unrelated", {}) {}

class Mailer extends Context.Service<Mailer, { readonly send: (to: string) => Effect.Effect<void> }>()("Mailer") {}
class Users extends Context.Service<Users, { readonly email: (id: number) => Effect.Effect<string, UserNotFound> }>()(
  "Users"
) {}

const sendWelcomeEmail = Actor.make("send_welcome_email", {
  queue: "email",
  payload: Schema.Struct({ userId: Schema.Number }),
  success: Schema.String,
  error: UserNotFound
})

// ---- sending: the payload type is the schema's ----
export const sends = Effect.gen(function*() {
  const message = yield* sendWelcomeEmail.send({ userId: 1 })
  const userId: number = message.payload.userId
  // @ts-expect-error a wrong payload type does not compile
  yield* sendWelcomeEmail.send({ userId: "1" })
  // @ts-expect-error a missing field does not compile
  yield* sendWelcomeEmail.send({})
  // @ts-expect-error an unknown option does not compile
  yield* sendWelcomeEmail.send({ userId: 1 }, { dealy: "1 second" })
  return userId
})
// sending needs a Broker
export const needsBroker: Effect.Effect<unknown, unknown, Broker.Broker> = sends
// @ts-expect-error sending without a Broker does not compile
export const noBroker: Effect.Effect<unknown, unknown, never> = sends

// ---- handlers: success and error types are the actor's ----
const SendWelcomeEmailLive = sendWelcomeEmail.handle(({ userId }) =>
  Effect.gen(function*() {
    const email = yield* (yield* Users).email(userId)
    yield* (yield* Mailer).send(email)
    return `Welcome email sent to ${email}`
  })
)
// @ts-expect-error a handler returning the wrong success type does not compile
sendWelcomeEmail.handle(() => Effect.succeed(42))
// @ts-expect-error a handler failing with an undeclared error does not compile
sendWelcomeEmail.handle(() => Effect.fail(new Unrelated()))

// ---- options are checked against the actor's error type ----
Actor.make("process_user_input", { payload: Schema.Void, error: UserNotFound, throws: ["UserNotFound"] })
// @ts-expect-error throws naming a tag the actor cannot fail with does not compile
Actor.make("process_user_input", { payload: Schema.Void, error: UserNotFound, throws: ["Unrelated"] })
Actor.make("typed_retry_when", {
  payload: Schema.Void,
  error: UserNotFound,
  retryWhen: (failure) => failure._tag === "UserNotFound" ? failure.userId > 0 : failure._tag === "TimeLimitExceeded"
})

// ---- the worker requires exactly what its handlers need ----
const WorkerLive = Worker.layer({ handlers: [SendWelcomeEmailLive], concurrency: 8 })
export const requirements: Layer.Layer<never, unknown, Broker.Broker | Users | Mailer> = WorkerLive

declare const BrokerLive: Layer.Layer<Broker.Broker>
declare const UsersLive: Layer.Layer<Users>
declare const MailerLive: Layer.Layer<Mailer>

export const complete: Effect.Effect<never, unknown, never> = Layer.launch(WorkerLive).pipe(
  Effect.provide([BrokerLive, UsersLive, MailerLive])
)
// @ts-expect-error a worker missing a handler's service (Mailer) does not compile
export const missingMailer: Effect.Effect<never, unknown, never> = Layer.launch(WorkerLive).pipe(
  Effect.provide([BrokerLive, UsersLive])
)

// ---- CurrentMessage is provided by the worker, never required from the user ----
const withCurrent = sendWelcomeEmail.handle(() =>
  Effect.gen(function*() {
    const message = yield* Worker.CurrentMessage
    return `attempt ${message.attempts}`
  })
)
export const currentProvided: Layer.Layer<never, unknown, Broker.Broker> = Worker.layer({ handlers: [withCurrent] })

// ---- results are typed as the actor's success, and fail with its typed error ----
const generateReport = Actor.make("generate_report", {
  payload: Schema.Struct({ day: Schema.String }),
  success: Schema.Struct({ total: Schema.Number }),
  error: UserNotFound,
  storeResults: true
})
export const readsResult = Effect.gen(function*() {
  const message = yield* generateReport.send({ day: "2026-11-29" })
  const report = yield* generateReport.result(message, { timeout: "10 seconds" })
  const total: number = report.total
  // @ts-expect-error a result read as the wrong type does not compile
  const wrong: string = yield* generateReport.result(message)
  // @ts-expect-error a message of another actor (another success type) is not this actor's
  yield* generateReport.result(yield* sendWelcomeEmail.send({ userId: 1 }))
  return [total, wrong]
})
export const resultErrors = generateReport.result("id").pipe(
  Effect.catchTag("UserNotFound", (error) => Effect.succeed({ total: error.userId })),
  Effect.catchTag("ResultTimeout", () => Effect.succeed({ total: 0 })),
  Effect.catchTag("ResultMissing", () => Effect.succeed({ total: 0 })),
  Effect.catchTag("MessageFailed", () => Effect.succeed({ total: 0 }))
)
// reading a result needs the Results store (the broker layers provide it)
export const needsResults: Effect.Effect<unknown, unknown, Results.Results> = generateReport.result("id")

// ---- pipelines: each step's payload is the previous step's success ----
const Order = Schema.Struct({ orderId: Schema.String })
const Payment = Schema.Struct({ orderId: Schema.String, paymentId: Schema.String })
const createOrder = Actor.make("create_order", { payload: Schema.Struct({ cart: Schema.String }), success: Order })
const processPayment = Actor.make("process_payment", { payload: Order, success: Payment })
const sendConfirmation = Actor.make("send_confirmation", { payload: Payment, success: Schema.String })
const alertAdmin = Actor.make("alert_admin", { payload: Actor.FailurePayload })
export const pipelines = Effect.gen(function*() {
  const first = yield* createOrder.message({ cart: "c-1" })
  yield* Pipeline.run(first, [processPayment, sendConfirmation], { onFailure: alertAdmin })
  // @ts-expect-error a step whose payload is not the previous step's success does not compile
  yield* Pipeline.run(first, [sendConfirmation])
  // @ts-expect-error a wrong step in the middle of the chain does not compile
  yield* Pipeline.run(first, [processPayment, createOrder])
  // @ts-expect-error a failure callback must accept { messageId, error }
  yield* Pipeline.run(first, [processPayment], { onFailure: processPayment })
})

// ---- callbacks: the callback actor must accept what it is sent ----
const onReport = Actor.make("on_report", { payload: Actor.successPayload(Schema.Struct({ total: Schema.Number })) })
export const callbacks = Effect.gen(function*() {
  yield* generateReport.send({ day: "d" }, { onSuccess: onReport, onFailure: alertAdmin })
  // @ts-expect-error a success callback whose payload does not accept the result does not compile
  yield* sendWelcomeEmail.send({ userId: 1 }, { onSuccess: onReport })
  // @ts-expect-error a failure callback whose payload does not accept { messageId, error } does not compile
  yield* sendWelcomeEmail.send({ userId: 1 }, { onFailure: onReport })
})
// and on the actor
Actor.make("with_callbacks", {
  payload: Schema.Void,
  success: Schema.Struct({ total: Schema.Number }),
  onSuccess: onReport
})
// @ts-expect-error an actor-level success callback must accept the actor's result
Actor.make("bad_callbacks", { payload: Schema.Void, success: Schema.String, onSuccess: onReport })

// ---- a schedule's payload is checked against its actor's payload type ----
export const scheduled = Schedules.entry({
  name: "welcome",
  actor: sendWelcomeEmail,
  cron: "0 2 * * *",
  payload: { userId: 1 }
})
export const badSchedule = Schedules.entry({
  name: "bad",
  actor: sendWelcomeEmail,
  cron: "0 2 * * *",
  // @ts-expect-error a payload of the wrong type does not compile
  payload: { userId: "1" }
})
