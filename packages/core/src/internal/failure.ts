/**
 * Turning handler failures into the readable `LastError` records kept by the broker.
 *
 * @internal
 */
import type { LastError } from "../Message.ts"

/**
 * A readable rendering of an error: its message, or its fields as JSON for tagged errors without a message.
 *
 * @internal
 */
export const describe = (error: unknown): string => {
  if (error instanceof Error && error.message !== "") return error.message
  if (typeof error === "object" && error !== null) {
    const { _tag, ...fields } = error as Record<string, unknown>
    try {
      return Object.keys(fields).length === 0 ? String(_tag ?? error) : JSON.stringify(fields)
    } catch {
      return String(error)
    }
  }
  return String(error)
}

/** @internal */
export const lastError = (failure: { readonly _tag: string }): LastError => ({
  tag: failure._tag,
  message: describe(failure)
})

/** @internal */
export const isTagged = (u: unknown): u is { readonly _tag: string } =>
  typeof u === "object" && u !== null && typeof (u as { _tag?: unknown })._tag === "string"
