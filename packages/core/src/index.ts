/**
 * Errand: background tasks for TypeScript on Effect 4. An actor is a named, schema-validated, typed Effect; sending it
 * puts a message on a queue; a worker runs it with retries, a time limit and a dead-letter queue.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Broker from "./Broker.ts"

/** @since 0.1.0 */
export * as ErrandError from "./ErrandError.ts"

/** @since 0.1.0 */
export * as Message from "./Message.ts"

/** @since 0.1.0 */
export * as Actor from "./Actor.ts"

/** @since 0.1.0 */
export * as Worker from "./Worker.ts"

/** @since 0.2.0 */
export * as Results from "./Results.ts"

/** @since 0.2.0 */
export * as Retry from "./Retry.ts"

/** @since 0.2.0 */
export * as Pipeline from "./Pipeline.ts"

/** @since 0.2.0 */
export * as Group from "./Group.ts"

/** @since 0.2.0 */
export * as Middleware from "./Middleware.ts"
/** @since 0.1.0 */
export * as Schedules from "./Schedules.ts"

/** @since 0.2.0 */
export * as Metrics from "./Metrics.ts"

/** @since 0.2.0 */
export * as Monitoring from "./Monitoring.ts"

/** @since 0.2.0 */
export * as Tracing from "./Tracing.ts"

/** @since 0.3.0 */
export * as Heartbeat from "./Heartbeat.ts"
