/**
 * A fast structural check of the message envelope for the worker's hot path. `Message.Envelope` (the Schema) stays
 * the definition: the tests check that both agree, and the Schema explains what is wrong when this check fails.
 *
 * @internal
 */
import type { Envelope } from "../Message.ts"

const isOptionalNumber = (record: Record<string, unknown>, key: string): boolean =>
  !(key in record) || typeof record[key] === "number"

/** @internal */
export const isEnvelope = (u: unknown): u is Envelope => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const record = u as Record<string, unknown>
  if (
    typeof record["id"] !== "string" || typeof record["actor"] !== "string" || typeof record["queue"] !== "string" ||
    typeof record["enqueuedAt"] !== "number" || !("payload" in record)
  ) return false
  if (!isOptionalNumber(record, "eta") || !isOptionalNumber(record, "priority")) return false
  if ("key" in record && typeof record["key"] !== "string") return false
  if (!isOptionalNumber(record, "keyTtl")) return false
  if (!("options" in record)) return true
  const options = record["options"]
  return typeof options === "object" && options !== null && !Array.isArray(options)
}
