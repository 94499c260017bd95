/**
 * The dashboard: a JSON API and a page that uses it — queues with live counts, throughput and handler time over the
 * last minutes, the live workers with their running handlers, dead letters (payload, error, attempts, attempt history) with requeue and
 * delete for one, a selection or all, a dead letter by id, and schedules with their next run. It works on every
 * broker: it reads only the `Broker` contract (`queues`, `stats`, `deadLetters`, `deadLetter`, `heartbeats`).
 *
 * ```ts
 * // in your own effect/http server, under /errand
 * const DashboardLive = Dashboard.layer({ prefix: "/errand", token: Redacted.make(process.env.TOKEN!) })
 * HttpRouter.serve(Layer.mergeAll(DashboardLive, MyRoutes)).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 })),
 *   Layer.provide(RedisBroker.layerConfig())
 * )
 * // or on its own: errand dashboard --port 8080 (Dashboard.serve)
 * ```
 *
 * **Safe by default**
 *
 * - `serve` listens on 127.0.0.1 unless told otherwise, and refuses to listen beyond loopback with actions allowed and
 *   no token: set `token` (then every action needs `Authorization: Bearer <token>`, else 401) or `readOnly`.
 * - Read-only mode refuses every action (403). Every action also needs the header `X-Errand-Dashboard: 1`, which a
 *   cross-site form or image cannot send (a cross-origin script cannot either, without a CORS preflight the dashboard
 *   never answers), so another web page cannot act through a browser on loopback.
 * - The page renders data as text only (`textContent`, never HTML), and is served with a Content-Security-Policy that
 *   allows only the package's own script and style: a payload holding `<script>` shows as text.
 * - Queue names and message ids in requests are checked against Errand's grammars, and every call goes through the
 *   provided broker, so a request can only reach that broker's prefix.
 *
 * **Cheap**: the page polls at `pollEvery` (default 2 s) and only while visible; the queues endpoint makes one
 * `stats` call per queue (a handful of O(1) Redis commands each, never a scan, whatever the queue's size); the
 * throughput sampler makes one `heartbeats` call every `sampleEvery` (default 2 s), whatever the number of pages open.
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Broker } from "@errand/core"
import { type Duration, Effect, Layer, type Redacted } from "effect"
import { HttpRouter, HttpServer, type HttpServerError } from "effect/http"
import { createServer } from "node:http"
import { InvalidDashboardOptions } from "./DashboardError.ts"
import { routes } from "./internal/api.ts"
import { settings } from "./internal/settings.ts"

/**
 * The options of `Dashboard.layer`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The path the dashboard is mounted under, e.g. `"/errand"` (default: the root). */
  readonly prefix?: string | undefined
  /** The token actions need (`Authorization: Bearer <token>`); default none (actions need no token). */
  readonly token?: Redacted.Redacted<string> | undefined
  /** Refuse every action: requeue and delete answer 403 (default false). */
  readonly readOnly?: boolean | undefined
  /** How often the page refreshes (default 2 seconds, at least 500 ms). */
  readonly pollEvery?: Duration.Input | undefined
  /** How often throughput is sampled from the workers' heartbeats (default 2 seconds, at least 500 ms). */
  readonly sampleEvery?: Duration.Input | undefined
  /** How much throughput history the chart shows (default 10 minutes, at most a day). */
  readonly history?: Duration.Input | undefined
}

/**
 * The options of `Dashboard.serve`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServeOptions extends Options {
  /** The address to listen on (default `127.0.0.1`). Beyond loopback, `token` or `readOnly` is required. */
  readonly host?: string | undefined
  /** The port (default 8080; 0 picks a free one). */
  readonly port?: number | undefined
}

/**
 * The error of a server that cannot listen (the port is taken, the address is not this host's).
 *
 * @category errors
 * @since 0.1.0
 */
export type ServeError = HttpServerError.ServeError

/**
 * The dashboard's routes, added to the `HttpRouter` under `prefix`, and its throughput sampler (a fiber of the
 * layer's scope). Serve the router as you serve your own routes (`HttpRouter.serve`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<never, InvalidDashboardOptions, HttpRouter.HttpRouter | Broker.Broker> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const checked = yield* settings(options)
    const router = yield* HttpRouter.HttpRouter
    yield* routes(checked, checked.prefix === "" ? router : router.prefixed(checked.prefix))
  }))

/**
 * Whether a listen address is a loopback one (`127.0.0.0/8`, `::1`, `localhost`): reachable from this host only.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host)

/**
 * The dashboard on an HTTP server of its own (Node's), at `host:port` (the `HttpServer` it provides tells the address).
 * Fails with `InvalidDashboardOptions` when `port` is not an integer from 0 to 65535, or when `host` is beyond
 * loopback and neither `token` nor `readOnly` is set.
 *
 * @category layers
 * @since 0.1.0
 */
export const serve = (
  options: ServeOptions = {}
): Layer.Layer<HttpServer.HttpServer, InvalidDashboardOptions | ServeError, Broker.Broker> => {
  const host = options.host ?? "127.0.0.1"
  const port = options.port ?? 8080
  const refuse = (option: string, problem: string) =>
    Layer.effect(HttpServer.HttpServer)(Effect.fail(new InvalidDashboardOptions({ option, problem })))
  // Node's listen throws (a defect) on a port out of range: refuse it as a setting
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    return refuse("port", `must be an integer from 0 to 65535 (got ${port})`)
  }
  if (!isLoopback(host) && options.token === undefined && options.readOnly !== true) {
    return refuse(
      "host",
      `${host} is reachable from other hosts: set a token (--token or ERRAND_DASHBOARD_TOKEN) so that ` +
        "actions need it, or run read-only (--read-only)"
    )
  }
  return HttpRouter.serve(layer(options), { disableLogger: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port, host }))
  )
}
