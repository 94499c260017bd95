/**
 * The API served: the contract (`Api.ts`) with its handlers (`Handlers.ts`) as `HttpRouter` routes, plus the OpenAPI
 * document at `/openapi.json`, on a Node HTTP server. What the handlers need — `Users`, `Auth`, `Orders`, the `Broker`
 * and its `Results` store — stays a requirement: `web.ts` provides the real ones, tests their own.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiBuilder, HttpApiMiddleware } from "effect/http-api"
import { createServer } from "node:http"
import { Api } from "./Api.ts"
import * as Handlers from "./Handlers.ts"

/**
 * The API's routes, for an `HttpRouter`: every endpoint, `/openapi.json`, and request validation failures answered as
 * 400 problems that name the field (`errors: [{ path: ["payload", "email"], message }]`).
 */
export const routes = HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide(Handlers.layer),
  Layer.provide(HttpApiMiddleware.layerProblemDetails({ includeDetails: true }))
)

/** Where the server listens. */
export interface ListenOptions {
  /** The port; 0 picks a free one (the address is logged: `Listening on http://127.0.0.1:PORT`). */
  readonly port: number
  readonly host: string
  /** Log each request (default true). */
  readonly logRequests?: boolean | undefined
}

/** The API on a Node HTTP server at `host:port`, closed (after the requests in flight) when the layer's scope ends. */
export const layer = (options: ListenOptions) =>
  HttpRouter.serve(routes, { disableLogger: options.logRequests === false }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port, host: options.host }))
  )
