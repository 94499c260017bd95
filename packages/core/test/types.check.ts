/**
 * Type-level specification, checked by `pnpm typecheck` (part of `pnpm test`): every `@ts-expect-error` line must
 * fail to compile, or the check fails. This file is never run.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { Actor, type Broker, Schedules, Worker } from "../src/index.ts"

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
