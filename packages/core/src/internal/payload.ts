/**
 * A compiled decoder of payloads for the worker's hot path, which is also their encoder for `send`. `Schema.decodeUnknownEffect(Schema.toCodecJson(schema))`
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
 * Encoding these codecs is the same function: each leaf encodes a value that passes its type test to itself (a
 * finite number through `Schema.Number`'s JSON link too), and a struct is built the same way, so the compiled function
 * returns exactly what `Schema.encodeEffect(codec)` returns, or `invalid`, after which the Schema encode runs.
 *
 * Anything else — checks, transformations, declarations (classes, dates...), unions, arrays, records, defaults, symbol
 * or `__proto__` keys — is not compiled: `compile` returns `undefined` and the worker always runs the Schema decode.
 *
 * Why not effect's own `SchemaJITCompiler` (`enable` + `Schema.decodeUnknownExit`): it compiles any codec, but each
 * decode still builds an `Exit`; on the in-process drain it cost 2.6–2.8 µs per job against 2.0–2.1 µs here (A/B,
 * four alternating runs). The Schema stays the definition and the judge of every payload this does not accept.
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

/** A leaf's type test. */
type Leaf =
  | { readonly _tag: "String" | "Number" | "FiniteNumber" | "Boolean" | "Null" }
  | { readonly _tag: "Literal"; readonly literal: SchemaAST.LiteralValue }

/** What a struct's decoder does, field by field. */
interface Plan {
  readonly fields: ReadonlyArray<Field>
}

interface Field {
  readonly name: string
  readonly optional: boolean
  readonly type: Leaf | Plan
}

/** The type test of a leaf, or `undefined` when the leaf is not compiled. */
const planLeaf = (ast: SchemaAST.AST): Leaf | undefined => {
  if (ast.checks !== undefined) return undefined
  if (ast.encoding !== undefined) {
    // Schema.Number under toCodecJson: a finite number decodes to itself
    return ast._tag === "Number" && numberJsonLink !== undefined && ast.encoding.length === 1 &&
        ast.encoding[0] === numberJsonLink
      ? { _tag: "FiniteNumber" }
      : undefined
  }
  switch (ast._tag) {
    case "String":
    case "Number":
    case "Boolean":
    case "Null":
      return { _tag: ast._tag }
    case "Literal":
      return { _tag: "Literal", literal: ast.literal }
    default:
      return undefined
  }
}

/** Plans a property, or returns `undefined`. */
const planField = (ps: SchemaAST.PropertySignature): Field | undefined => {
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
  const planned = type._tag === "Objects" ? planObjects(type) : planLeaf(type)
  return planned === undefined ? undefined : { name, optional, type: planned }
}

/** Plans a struct (its context, if a field's, is checked by `planField`), or returns `undefined`. */
const planObjects = (ast: SchemaAST.Objects): Plan | undefined => {
  if (ast.checks !== undefined || ast.encoding !== undefined || ast.encodingChecks !== undefined) return undefined
  if (ast.indexSignatures.length > 0 || ast.propertySignatures.length === 0) return undefined
  const fields: Array<Field> = []
  for (const ps of ast.propertySignatures) {
    const field = planField(ps)
    if (field === undefined) return undefined
    fields.push(field)
  }
  return { fields }
}

const isPlan = (type: Leaf | Plan): type is Plan => "fields" in type

const leafTest = (leaf: Leaf): (u: unknown) => boolean => {
  switch (leaf._tag) {
    case "String":
      return (u) => typeof u === "string"
    case "Number":
      return (u) => typeof u === "number"
    case "FiniteNumber":
      return (u) => typeof u === "number" && Number.isFinite(u)
    case "Boolean":
      return (u) => typeof u === "boolean"
    case "Null":
      return (u) => u === null
    case "Literal": {
      const literal = leaf.literal
      return (u) => u === literal
    }
  }
}

/** A plan run as closures. */
const interpret = (plan: Plan): Decode => {
  const fields = plan.fields.map((field) => ({
    name: field.name,
    optional: field.optional,
    test: isPlan(field.type) ? undefined : leafTest(field.type),
    decode: isPlan(field.type) ? interpret(field.type) : undefined
  }))
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

/** A plan of the codec, if it is one this module compiles. */
const plan = (codec: SchemaAST.AST): Plan | Leaf | undefined => {
  if (codec.context !== undefined) return undefined
  return codec._tag === "Objects" ? planObjects(codec) : planLeaf(codec)
}

/**
 * The compiled decoder of a payload schema's JSON codec (`Schema.toCodecJson(schema).ast`), or `undefined` when the
 * codec is not one this module compiles. The decoder returns the decoded payload, or `invalid`.
 *
 * @internal
 */
export const compile = (codec: SchemaAST.AST): Decode | undefined => {
  const planned = plan(codec)
  if (planned === undefined) return undefined
  let run: Decode
  if (isPlan(planned)) {
    run = interpret(planned)
  } else {
    const test = leafTest(planned)
    run = (input) => test(input) ? input : invalid
  }
  // a getter that throws is the Schema decode's to report (as a defect), not the worker's
  return (input) => {
    try {
      return run(input)
    } catch {
      return invalid
    }
  }
}
