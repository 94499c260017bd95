/**
 * The actor of the chaos test and the soak, shared by the producer and the worker processes.
 */
import { Actor } from "@errand/core"
import { Schema } from "effect"

/** A job numbered `n`; defined per queue so each run uses its own. */
export const chaosActor = (queue: string) =>
  Actor.make("chaos", { queue, payload: Schema.Struct({ n: Schema.Number }) })
