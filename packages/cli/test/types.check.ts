/**
 * Type-level specifications of `defineWorker` (checked by `pnpm typecheck`, never run).
 */
import { Actor, type Broker } from "@errand/core"
import { Context, Effect, Layer, Schema } from "effect"
import { defineWorker } from "../src/index.ts"

class Mailer extends Context.Service<Mailer, { readonly send: (to: string) => Effect.Effect<void> }>()("Mailer") {}
class Users extends Context.Service<Users, { readonly email: (id: number) => Effect.Effect<string> }>()("Users") {}

const welcome = Actor.make("welcome", { payload: Schema.Struct({ userId: Schema.Number }) })
const WelcomeLive = welcome.handle(({ userId }) =>
  Effect.gen(function*() {
    const email = yield* (yield* Users).email(userId)
    yield* (yield* Mailer).send(email)
  })
)

declare const MailerLive: Layer.Layer<Mailer>
declare const UsersLive: Layer.Layer<Users>
declare const UsersFromBroker: Layer.Layer<Users | Mailer, never, Broker.Broker>

export const complete = defineWorker({ handlers: [WelcomeLive], services: Layer.mergeAll(MailerLive, UsersLive) })
export const usingTheBroker = defineWorker({ handlers: [WelcomeLive], services: UsersFromBroker })
export const missingMailer = defineWorker({
  handlers: [WelcomeLive],
  // @ts-expect-error the handlers need Mailer too
  services: UsersLive
})
export const nothingNeeded = defineWorker({ handlers: [], services: Layer.empty })
