/**
 * A compiled decoder of payloads for the worker's hot path. `Schema.decodeUnknownEffect(Schema.toCodecJson(schema))`
 * stays the definition: the compiled decoder exists only for codecs made of plain structs and leaves whose decoding
 * is a type test (and `Schema.Number`'s JSON link, for finite numbers), and it either returns exactly what the Schema
 * decode returns, or `invalid`, after which the worker runs the Schema decode, which decides (and explains a failure).
 *
 * What it mirrors, from effect's `SchemaAST.Objects` parser under the default parse options (the worker passes none):
 * the input must be a non-array object; each property signature, in order, is read when `name in input`; the output
 * is a new object with the declared properties in declaration order (excess properties are dropped); an optional key
 * that is absent stays absent. A leaf with no checks and no encoding succeeds with the input value itself when its
 * type test passes. `Schema.Number`'s JSON codec (`Union([finite number, "NaN" | "Infinity" | "-Infinity"])` then
 * `Number(...)`) maps a finite number to itself; anything else (the non-finite string forms included) is left to the
 * Schema decode.
 *
 * Anything else — checks, transformations, declarations (classes, dates...), unions, arrays, records, defaults, symbol
 * or `__proto__` keys — is not compiled: `compile` returns `undefined` and the worker always runs the Schema decode.
 *
 * @internal
 */
import { Schema, type SchemaAST } from "effect"

/** What a compiled decoder returns when it does not decide: the Schema decode runs instead. @internal */
export const invalid: unique symbol = Symbol.for("@errand/core/internal/payload/invalid")

/** @internal */
export type Decode = (input: unknown) => unknown

/** The one link of `Schema.toCodecJson(Schema.Number)` (effect's `numberToJson`), compared by identity. */
const numberJsonLink: SchemaAST.Link | undefined = Schema.toCodecJson(Schema.Number).ast.encoding?.[0]

/** The type test of a leaf, or `undefined` when the leaf is not compiled. */
const leafTest = (ast: SchemaAST.AST): ((u: unknown) => boolean) | undefined => {
  if (ast.checks !== undefined) return undefined
  if (ast.encoding !== undefined) {
    // Schema.Number under toCodecJson: a finite number decodes to itself
    return ast._tag === "Number" && ast.encoding.length === 1 && ast.encoding[0] === numberJsonLink &&
        numberJsonLink !== undefined
      ? (u) => typeof u === "number" && Number.isFinite(u)
      : undefined
  }
  switch (ast._tag) {
    case "String":
      return (u) => typeof u === "string"
    case "Number":
      return (u) => typeof u === "number"
    case "Boolean":
      return (u) => typeof u === "boolean"
    case "Null":
      return (u) => u === null
    case "Literal": {
      const literal = ast.literal
      return (u) => u === literal
    }
    default:
      return undefined
  }
}

interface Field {
  readonly name: string
  readonly optional: boolean
  /** A leaf's type test, or the compiled decoder of a nested struct. */
  readonly test: ((u: unknown) => boolean) | undefined
  readonly decode: Decode | undefined
}

/** Compiles a property's type, or returns `undefined`. */
const compileField = (ps: SchemaAST.PropertySignature): Field | undefined => {
  const name = ps.name
  if (typeof name !== "string" || name === "__proto__") return undefined
  const type = ps.type
  const context = type.context
  let optional = false
  if (context !== undefined) {
    // `Schema.optionalKey`: absent stays absent; a default or a mutable/annotated key is left to the Schema
    if (
      context.isOptional !== true || context.constructorDefault !== undefined || context.annotations !== undefined ||
      context.isMutable !== false
    ) return undefined
    optional = true
  }
  if (type._tag === "Objects") {
    const decode = compileObjects(type)
    return decode === undefined ? undefined : { name, optional, test: undefined, decode }
  }
  const test = leafTest(type)
  return test === undefined ? undefined : { name, optional, test, decode: undefined }
}

/** Compiles a struct (its context, if a field's, is checked by `compileField`), or returns `undefined`. */
const compileObjects = (ast: SchemaAST.Objects): Decode | undefined => {
  if (ast.checks !== undefined || ast.encoding !== undefined || ast.encodingChecks !== undefined) return undefined
  if (ast.indexSignatures.length > 0 || ast.propertySignatures.length === 0) return undefined
  const fields: Array<Field> = []
  for (const ps of ast.propertySignatures) {
    const field = compileField(ps)
    if (field === undefined) return undefined
    fields.push(field)
  }
  const count = fields.length
  return (input) => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) return invalid
    const record = input as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (let i = 0; i < count; i++) {
      const field = fields[i]!
      const name = field.name
      if (!(name in record)) {
        if (field.optional) continue
        return invalid
      }
      const value = record[name]
      if (field.decode !== undefined) {
        const decoded = field.decode(value)
        if (decoded === invalid) return invalid
        out[name] = decoded
      } else {
        if (!field.test!(value)) return invalid
        out[name] = value
      }
    }
    return out
  }
}

/**
 * The compiled decoder of a payload schema's JSON codec (`Schema.toCodecJson(schema).ast`), or `undefined` when the
 * codec is not one this module compiles. The decoder returns the decoded payload, or `invalid`.
 *
 * @internal
 */
export const compile = (codec: SchemaAST.AST): Decode | undefined => {
  if (codec.context !== undefined) return undefined
  let decode: Decode | undefined
  if (codec._tag === "Objects") {
    decode = compileObjects(codec)
  } else {
    const test = leafTest(codec)
    if (test !== undefined) decode = (input) => test(input) ? input : invalid
  }
  if (decode === undefined) return undefined
  const run = decode
  // a getter that throws is the Schema decode's to report (as a defect), not the worker's
  return (input) => {
    try {
      return run(input)
    } catch {
      return invalid
    }
  }
}
