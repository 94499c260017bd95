/**
 * The errors of the dashboard: a refused configuration at start, and the reasons an API request is refused (each
 * answered as JSON `{ error, message }` with its HTTP status).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The dashboard's options cannot be used: an unsafe or malformed setting (for instance a listener beyond loopback
 * with actions allowed and no token).
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidDashboardOptions extends Schema.TaggedError<InvalidDashboardOptions>()("InvalidDashboardOptions", {
  /** The option at fault, e.g. `"token"`. */
  option: Schema.String,
  /** What is wrong, and how to fix it. */
  problem: Schema.String
}) {
  override get message(): string {
    return `Dashboard option ${this.option}: ${this.problem}`
  }
}

/**
 * A request the API refuses: malformed input (400), a missing or wrong token (401), an action refused by read-only
 * mode or a request without the dashboard's request header (403), or something that does not exist (404).
 *
 * @category errors
 * @since 0.1.0
 */
export class RequestRefused extends Schema.TaggedError<RequestRefused>()("RequestRefused", {
  /** The HTTP status it is answered with. */
  status: Schema.Literals([400, 401, 403, 404]),
  /** Why, for the user. */
  reason: Schema.String
}) {
  override get message(): string {
    return this.reason
  }
}
