/**
 * Errand's memory broker and worker. Placeholder until `@errand/core` exports `Actor` and `Worker`.
 */
import type { InProcessContender } from "../types.ts"

export const contender: InProcessContender = {
  load: () => Promise.reject(new Error("the Errand in-process contender is not written yet"))
}
