/**
 * `@errand/dashboard`: Errand's web dashboard and its JSON API, for any broker — as routes to mount in your own
 * `effect/http` server under a path prefix (`Dashboard.layer`), or as a server of its own (`Dashboard.serve`, which
 * `errand dashboard` runs).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Dashboard from "./Dashboard.ts"

/** @since 0.1.0 */
export * as DashboardError from "./DashboardError.ts"
