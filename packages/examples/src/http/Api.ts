/**
 * The shop's HTTP API, as a contract: the "web" service of the seed's docker-compose, the producer side of the app.
 * Each route writes to the database and sends a background task; the worker (`errand worker src/worker.ts`) runs it.
 *
 * | route | does | answers |
 * | --- | --- | --- |
 * | `POST /users` `{ email, name }` | signs up, opens a session, sends `send_welcome_email` | 201 `{ user, sessionId, messageId }`; 409 `EmailTaken` |
 * | `POST /password-resets` `{ email }` | creates a reset token, sends `send_password_reset_email` | 202 `{ accepted: true }`, whether or not the email has an account |
 * | `POST /orders` `{ userId, items: [{ sku, quantity }] }` | places the order, starts the `process_order` pipeline | 201 `{ order, messageId }`; 422 `UserNotFound` / `ProductNotFound` |
 * | `POST /exports` `{ userId }` | sends `export_user_data` | 202 `{ messageId }`; 422 `UserNotFound` |
 * | `GET /exports/:messageId` | reads that export's stored result | 200 `{ status: "pending" }`, `{ status: "done", result }` or `{ status: "failed", error, reason }` |
 *
 * A body or parameter that does not match its schema is a 400 problem (RFC 9457) whose `errors` name the field
 * (`{ path: ["payload", "email"], message }`); the database or the broker being down is a 503 `Unavailable`. The same
 * value drives the server (`Server.ts`), a typed client (`HttpApiClient.make(Api)`) and the OpenAPI document served
 * at `/openapi.json`.
 */
import { Message } from "@errand/core"
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import { ExportStatus } from "../actors.ts"
import { Id, Order, ProductNotFound, User, UserNotFound } from "../domain.ts"
import { EmailTaken } from "../services/Users.ts"

// ---------------------------------------------------------------------------------------------------------------
// Request bodies

/** An email address: something, `@`, a domain with a dot; no spaces. */
export const Email = Schema.String.check(
  Schema.isPattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { expected: "an email address, like ada@example.com" }),
  Schema.isMaxLength(254)
)

/** `POST /users`: who signs up. */
export const SignUp = Schema.Struct({
  email: Email,
  name: Schema.String.check(Schema.isNonEmpty(), Schema.isMaxLength(100))
})

/** `POST /password-resets`: the email of the account. */
export const PasswordReset = Schema.Struct({ email: Email })

/** One line of `POST /orders`: a product's SKU and how many. */
export const OrderLine = Schema.Struct({
  sku: Schema.String.check(Schema.isNonEmpty()),
  quantity: Schema.Int.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1_000))
})

/** `POST /orders`: whose order, and its lines (at least one). */
export const PlaceOrder = Schema.Struct({
  userId: Id,
  items: Schema.NonEmptyArray(OrderLine)
})

/** `POST /exports`: whose data to export. */
export const RequestExport = Schema.Struct({ userId: Id })

// ---------------------------------------------------------------------------------------------------------------
// Responses

/** The id of the message a route sent (Errand's id grammar): what its status route and `errand` admin commands take. */
export const MessageId = Message.MessageId

/** `POST /users`: the new user, their session, and the welcome email's message. */
export const SignedUp = Schema.Struct({ user: User, sessionId: Schema.String, messageId: MessageId })

/** `POST /password-resets`: accepted (the same answer for an unknown email, so the route reveals no accounts). */
export const ResetAccepted = Schema.Struct({ accepted: Schema.Literal(true) })

/** `POST /orders`: the order (status `pending`) and the message of its pipeline's first step. */
export const OrderPlaced = Schema.Struct({ order: Order, messageId: MessageId })

/** `POST /exports`: the export's message; `GET /exports/:messageId` reads its result. */
export const ExportRequested = Schema.Struct({ messageId: MessageId })

/** `GET /exports/:messageId`: still running (or unknown), done with its file, or failed (defined by its actor's module). */
export { ExportStatus }

// ---------------------------------------------------------------------------------------------------------------
// Errors (the domain's tagged errors, with the status each answers with)

/**
 * A service the route needs is down: the database or the broker. The details are logged, not sent (they can hold
 * hosts and SQL); the client may retry later.
 */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  service: Schema.Literals(["database", "broker"])
}, { httpApiStatus: 503 }) {}

/** 409: someone signed up with this email already. */
export const EmailTakenError = EmailTaken.pipe(HttpApiSchema.status(409))

/** 422: the body names a user that does not exist. */
export const UnknownUser = UserNotFound.pipe(HttpApiSchema.status(422))

/** 422: the body names a product (SKU) that does not exist. */
export const UnknownProduct = ProductNotFound.pipe(HttpApiSchema.status(422))

// ---------------------------------------------------------------------------------------------------------------
// The API

/** Sign-up and password resets. */
export const UsersGroup = HttpApiGroup.make("users").add(
  HttpApiEndpoint.post("signUp", "/users", {
    payload: SignUp,
    success: SignedUp.pipe(HttpApiSchema.status(201)),
    error: [EmailTakenError, Unavailable]
  }),
  HttpApiEndpoint.post("requestPasswordReset", "/password-resets", {
    payload: PasswordReset,
    success: ResetAccepted.pipe(HttpApiSchema.status(202)),
    error: Unavailable
  })
)

/** Placing orders. */
export const OrdersGroup = HttpApiGroup.make("orders").add(
  HttpApiEndpoint.post("placeOrder", "/orders", {
    payload: PlaceOrder,
    success: OrderPlaced.pipe(HttpApiSchema.status(201)),
    error: [UnknownUser, UnknownProduct, Unavailable]
  })
)

/** Data exports and their status. */
export const ExportsGroup = HttpApiGroup.make("exports").add(
  HttpApiEndpoint.post("requestExport", "/exports", {
    payload: RequestExport,
    success: ExportRequested.pipe(HttpApiSchema.status(202)),
    error: [UnknownUser, Unavailable]
  }),
  HttpApiEndpoint.get("exportStatus", "/exports/:messageId", {
    params: { messageId: MessageId },
    success: ExportStatus,
    error: Unavailable
  })
)

/**
 * The shop's API. Request validation failures answer as RFC 9457 problems (`HttpApiMiddleware.ProblemDetails`) that
 * list every invalid field of the body, not only the first.
 */
export const Api = HttpApi.make("shop")
  .add(UsersGroup)
  .add(OrdersGroup)
  .add(ExportsGroup)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotate(HttpApi.PayloadParseOptions, { errors: "all" })
  .annotate(OpenApi.Title, "Errand Shop")
  .annotate(OpenApi.Description, "The example shop's producer side: each route writes and sends a background task.")
