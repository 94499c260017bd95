/**
 * Errand's Redis broker and worker. Placeholder until `@errand/core` exports `Actor` and `Worker`.
 */
import type { RedisContender } from "../types.ts"

const unavailable = (): Promise<never> => Promise.reject(new Error("the Errand Redis contender is not written yet"))

export const contender: RedisContender = { producer: unavailable, worker: unavailable }
