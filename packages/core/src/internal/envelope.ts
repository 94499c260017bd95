/**
 * A fast structural check of the message envelope for the worker's hot path. `Message.Envelope` (the Schema) stays
 * the definition: the tests check that both agree, and the Schema explains what is wrong when this check fails.
 *
 * @internal
 */
import { Exit, Schema } from "effect"
import { Envelope } from "../Message.ts"

const decodeEnvelope = Schema.decodeUnknownExit(Envelope)

/** @internal */
export const isEnvelope = (u: unknown): u is Envelope => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const record = u as Record<string, unknown>
  if (
    typeof record.id !== "string" || typeof record.actor !== "string" || typeof record.queue !== "string" ||
    typeof record.enqueuedAt !== "number" || !("payload" in record)
  ) return false
  // Each optional key is read by name (one inline cache per field: a shared helper reading a variable key went
  // megamorphic); `in` only tells an absent key from one present with `undefined`, which is invalid.
  const { eta, priority, key, keyTtl, limits } = record
  if (eta === undefined ? "eta" in record : typeof eta !== "number") return false
  if (priority === undefined ? "priority" in record : typeof priority !== "number") return false
  if (key === undefined ? "key" in record : typeof key !== "string") return false
  if (keyTtl === undefined ? "keyTtl" in record : typeof keyTtl !== "number") return false
  if (limits === undefined ? "limits" in record : !isLimits(limits)) return false
  // composition fields are rare: the Schema checks them
  if (
    record.onSuccess !== undefined || record.onFailure !== undefined || record.pipeline !== undefined ||
    record.group !== undefined || "onSuccess" in record || "onFailure" in record || "pipeline" in record ||
    "group" in record
  ) {
    return Exit.isSuccess(decodeEnvelope(u))
  }
  const options = record.options
  if (options === undefined) return !("options" in record)
  return typeof options === "object" && options !== null && !Array.isArray(options)
}

const isAtLeast = (record: Record<string, unknown>, key: string, min: number, strict: boolean): boolean => {
  if (!(key in record)) return true
  const value = record[key]
  return typeof value === "number" && !Number.isNaN(value) && (strict ? value > min : value >= min)
}

/** The `limits` of `Message.Limits`, checked the same way (the Schema explains a failure). */
const isLimits = (u: unknown): boolean => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const record = u as Record<string, unknown>
  return (!("maxRetries" in record) ||
    Number.isInteger(record["maxRetries"]) && (record["maxRetries"] as number) >= 0) &&
    isAtLeast(record, "minBackoff", 0, false) && isAtLeast(record, "maxBackoff", 0, false) &&
    isAtLeast(record, "timeLimit", 0, true) && isAtLeast(record, "maxAge", 0, true)
}
