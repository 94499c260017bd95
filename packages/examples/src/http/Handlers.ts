/**
 * The API's handlers: a thin layer over the producer actions (`producer.ts`). Each one calls its action and maps what
 * can go wrong to the contract's errors (`Api.ts`): the domain's errors pass through with their status, a database or
 * broker failure becomes `Unavailable` (503, its details logged), and what only a bug can cause (a payload the
 * actor's schema refuses although the route's schema took it) is a defect (500).
 */
import type { ErrandError } from "@errand/core"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import type { DatabaseError } from "../domain.ts"
import * as Producer from "../producer.ts"
import { Users } from "../services/Users.ts"
import { Api, Unavailable } from "./Api.ts"

/** Logs why a service failed (hosts and SQL stay in the log) and fails with the contract's `Unavailable`. */
const unavailable = (service: Unavailable["service"]) => (error: DatabaseError | ErrandError.BrokerError) =>
  Effect.logWarning(`${service} unavailable`, error).pipe(Effect.andThen(Effect.fail(new Unavailable({ service }))))

/** Errors of a send that only a bug can cause: the route's schema admitted a payload its actor refuses. */
const bug = {
  InvalidPayload: Effect.die,
  InvalidOption: Effect.die,
  EnqueueVetoed: Effect.die
} as const

/** How a producer action's failures of the infrastructure, and its sends' bugs, map to the contract. */
const sendFailures = {
  DatabaseError: unavailable("database"),
  BrokerError: unavailable("broker"),
  ...bug
} as const

/** `POST /users`, `POST /password-resets`. */
export const UsersLive = HttpApiBuilder.group(Api, "users", (handlers) =>
  handlers
    .handle("signUp", ({ payload }) =>
      Producer.signUp(payload).pipe(
        Effect.map(({ message, sessionId, user }) => ({ user, sessionId, messageId: message.id })),
        Effect.catchTags(sendFailures)
      ))
    .handle("requestPasswordReset", ({ payload }) =>
      Producer.requestPasswordReset(payload.email).pipe(
        Effect.as({ accepted: true } as const),
        Effect.catchTags(sendFailures)
      )))

/** `POST /orders`. */
export const OrdersLive = HttpApiBuilder.group(
  Api,
  "orders",
  (handlers) =>
    handlers.handle("placeOrder", ({ payload }) =>
      Producer.placeOrder(payload.userId, payload.items).pipe(
        Effect.map(({ message, order }) => ({ order, messageId: message.id })),
        Effect.catchTags(sendFailures)
      ))
)

/** `POST /exports`, `GET /exports/:messageId`. */
export const ExportsLive = HttpApiBuilder.group(Api, "exports", (handlers) =>
  handlers
    .handle("requestExport", ({ payload }) =>
      Effect.gen(function*() {
        yield* (yield* Users).get(payload.userId) // an unknown user is the caller's mistake: 422 now, not a failed export later
        const message = yield* Producer.requestExport(payload.userId)
        return { messageId: message.id }
      }).pipe(
        Effect.catchTags(sendFailures)
      ))
    .handle("exportStatus", ({ params }) =>
      Producer.exportStatus(params.messageId).pipe(
        Effect.catchTags({
          BrokerError: unavailable("broker"),
          InvalidOption: Effect.die,
          ResultTimeout: Effect.die, // only a read with a timeout waits
          ResultDecodeError: Effect.die
        })
      )))

/** Every group's handlers; they need the data services, the broker and its results store. */
export const layer = Layer.mergeAll(UsersLive, OrdersLive, ExportsLive)
