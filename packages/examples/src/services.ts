/**
 * The services the example handlers need. They are Effect services, so production code provides real
 * implementations and tests provide in-memory ones, with no change to the handlers.
 */
import { Console, Context, Effect, Layer, Ref, Schema } from "effect"

/** A user of the example app. */
export interface User {
  readonly id: number
  readonly name: string
  readonly email: string
}

/** No user has this id. */
export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", { userId: Schema.Number }) {}

/** The mail server refused a message. */
export class MailerUnavailable extends Schema.TaggedError<MailerUnavailable>()("MailerUnavailable", {
  reason: Schema.String
}) {}

/** An email to send. */
export interface Mail {
  readonly to: string
  readonly template: string
  readonly context: { readonly [key: string]: unknown }
}

/** Sends email. */
export class Mailer extends Context.Service<Mailer, {
  readonly send: (mail: Mail) => Effect.Effect<void, MailerUnavailable>
}>()("@errand/examples/Mailer") {}

/** Looks users up. */
export class Users extends Context.Service<Users, {
  readonly get: (userId: number) => Effect.Effect<User, UserNotFound>
}>()("@errand/examples/Users") {}

const seedUsers: ReadonlyArray<User> = [
  { id: 1, name: "Ada", email: "ada@example.com" },
  { id: 2, name: "Grace", email: "grace@example.com" },
  { id: 3, name: "Alan", email: "alan@example.com" },
  { id: 4, name: "Barbara", email: "barbara@example.com" },
  { id: 5, name: "Edsger", email: "edsger@example.com" }
]

/** A user store over a fixed list (stands in for a database). */
export const UsersLive: Layer.Layer<Users> = Layer.succeed(
  Users,
  Users.of({
    get: (userId) => {
      const user = seedUsers.find((candidate) => candidate.id === userId)
      return user === undefined ? Effect.fail(new UserNotFound({ userId })) : Effect.succeed(user)
    }
  })
)

/** A mailer that prints what it would send. */
export const MailerConsole: Layer.Layer<Mailer> = Layer.succeed(
  Mailer,
  Mailer.of({ send: (mail) => Console.log(`      ✉  ${mail.template} → ${mail.to}`) })
)

/** A mailer that records what it sends, for tests. */
export class SentMail extends Context.Service<SentMail, Ref.Ref<ReadonlyArray<Mail>>>()(
  "@errand/examples/SentMail"
) {}

/** The recording mailer and the record it writes to. */
export const MailerRecording: Layer.Layer<Mailer | SentMail> = Layer.effectContext(
  Effect.gen(function*() {
    const sent = yield* Ref.make<ReadonlyArray<Mail>>([])
    return Context.make(Mailer, Mailer.of({ send: (mail) => Ref.update(sent, (all) => [...all, mail]) })).pipe(
      Context.add(SentMail, sent)
    )
  })
)

/** A mailer whose server is always down, for tests of retries. */
export const MailerDown: Layer.Layer<Mailer> = Layer.succeed(
  Mailer,
  Mailer.of({ send: () => Effect.fail(new MailerUnavailable({ reason: "connection refused" })) })
)
