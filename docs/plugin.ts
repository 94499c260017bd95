/**
 * A TypeDoc plugin with Errand's documentation rules (loaded by `typedoc.json`; its warnings are errors there):
 *
 * - modules are named by the specifier users import (`@errand/core/testing`), read from the package's `exports`;
 * - every export (of an entry point or of a module re-exported as a namespace) has `@since` with a version;
 * - every `@example` holds a ```ts code block that type-checks: each block is a module of its own, compiled with the
 *   workspace's compiler options from this directory, where `@errand/*` and `effect` resolve.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Application, type Comment, Converter, type ProjectReflection, type Reflection, ReflectionKind } from "typedoc"
import ts from "typescript"

const docsDir = Path.dirname(new URL(import.meta.url).pathname)

/** Kinds that must carry `@since` when they are a module's (or a namespace's) direct export. */
const exportKinds = ReflectionKind.Namespace | ReflectionKind.Class | ReflectionKind.Interface |
  ReflectionKind.TypeAlias | ReflectionKind.Function | ReflectionKind.Variable | ReflectionKind.Enum

/** The specifier an entry file is imported by (`@errand/core/testing` for core's `src/testing/index.ts`). */
const specifierOf = (file: string): string | undefined => {
  let dir = Path.dirname(file)
  while (!Fs.existsSync(Path.join(dir, "package.json"))) {
    const parent = Path.dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
  const manifest = JSON.parse(Fs.readFileSync(Path.join(dir, "package.json"), "utf8")) as {
    readonly name: string
    readonly exports?: Record<string, unknown>
  }
  for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
    if (typeof target === "string" && Path.resolve(dir, target) === Path.resolve(file)) {
      return Path.posix.join(manifest.name, subpath)
    }
  }
  return undefined
}

/** The doc comment of a reflection: its own, or its first signature's (functions). */
const commentOf = (reflection: Reflection): Comment | undefined =>
  reflection.comment ??
    (reflection.isDeclaration() ? reflection.signatures?.[0]?.comment ?? reflection.getSignature?.comment : undefined)

const text = (parts: ReadonlyArray<{ readonly text: string }>): string => parts.map((part) => part.text).join("").trim()

interface Example {
  readonly owner: string
  readonly code: string
}

/** Type-checks examples as virtual modules in the docs directory; returns one message per diagnostic. */
const checkExamples = (examples: ReadonlyArray<Example>): Array<string> => {
  const config = ts.readConfigFile(Path.join(docsDir, "tsconfig.json"), ts.sys.readFile)
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, docsDir)
  const options: ts.CompilerOptions = { ...parsed.options, noEmit: true, noUnusedLocals: false }
  const files = new Map(examples.map((example, i) => [Path.join(docsDir, `@example-${i}.ts`), example]))
  const host = ts.createCompilerHost(options)
  const { fileExists, readFile, getSourceFile } = host
  host.fileExists = (file) => files.has(file) || fileExists.call(host, file)
  host.readFile = (file) => files.get(file)?.code ?? readFile.call(host, file)
  host.getSourceFile = (file, language, ...rest) => {
    const example = files.get(file)
    return example === undefined
      ? getSourceFile.call(host, file, language, ...rest)
      : ts.createSourceFile(file, example.code, language, true)
  }
  const program = ts.createProgram([...files.keys()], options, host)
  return [...files].flatMap(([file, example]) =>
    ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((diagnostic) => {
      const line = diagnostic.file !== undefined && diagnostic.start !== undefined
        ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line + 1
        : 0
      const where = diagnostic.file?.fileName === file ? `line ${line} of the example` : diagnostic.file?.fileName
      return `The @example of ${example.owner} does not compile (${where}): ${
        ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
      }`
    })
  )
}

const validate = (app: Application, project: ProjectReflection): void => {
  const examples: Array<Example> = []
  for (const reflection of Object.values(project.reflections)) {
    const parent = reflection.parent
    if (
      reflection.kindOf(exportKinds) && parent !== undefined &&
      parent.kindOf(ReflectionKind.Module | ReflectionKind.Namespace | ReflectionKind.Project)
    ) {
      const since = commentOf(reflection)?.getTag("@since")
      if (since === undefined) app.logger.warn(`${reflection.getFriendlyFullName()} has no @since tag`)
      else if (!/^\d+\.\d+\.\d+$/.test(text(since.content))) {
        app.logger.warn(`${reflection.getFriendlyFullName()} has @since "${text(since.content)}", not a version`)
      }
    }
    const signatures = reflection.isDeclaration() ? reflection.signatures ?? [] : []
    for (const comment of [reflection.comment, ...signatures.map((signature) => signature.comment)]) {
      for (const tag of comment?.getTags("@example") ?? []) {
        const blocks = tag.content.filter((part) => part.kind === "code" && /^```(ts|typescript)\n/.test(part.text))
        if (blocks.length === 0) {
          app.logger.warn(`The @example of ${reflection.getFriendlyFullName()} has no \`\`\`ts code block`)
        }
        for (const block of blocks) {
          const example = {
            owner: reflection.getFriendlyFullName(),
            code: block.text.replace(/^```\w+\n/, "").replace(/```$/, "")
          }
          // a function's comment may be on the reflection and on its signature: check each example once
          if (!examples.some((seen) => seen.owner === example.owner && seen.code === example.code)) {
            examples.push(example)
          }
        }
      }
    }
  }
  if (examples.length > 0) { for (const message of checkExamples(examples)) app.logger.warn(message) }
}

/** TypeDoc's plugin entry point. */
export const load = (app: Application): void => {
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.kindOf(ReflectionKind.Module)) return
    const file = context.getSymbolFromReflection(reflection)?.declarations?.[0]?.getSourceFile().fileName
    const specifier = file === undefined ? undefined : specifierOf(file)
    if (specifier === undefined) app.logger.warn(`No package export names the entry point ${file ?? reflection.name}`)
    else reflection.name = specifier
  })
  app.on(Application.EVENT_VALIDATE_PROJECT, (project) => validate(app, project))
}
