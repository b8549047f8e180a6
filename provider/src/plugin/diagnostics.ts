// Diagnostics and attribute paths as resources see them (no generated types). The plugin layer converts them to
// tfplugin6.Diagnostic / AttributePath; Terraform then points at the config attribute a path names.

/** One step of an attribute path: an object attribute, a map key, or a list/tuple index. */
export type PathStep = { readonly attribute: string } | { readonly key: string } | { readonly index: number };

/** A path from the root object, e.g. `[{attribute:"aws_kms"},{index:0},{attribute:"region"}]` for `aws_kms[0].region`. */
export type AttributePath = readonly PathStep[];

/** What callers may pass where a path is expected: a path, or its string form `aws_kms[0].region` / `labels["env"]`. */
export type PathLike = AttributePath | string;

/** Parses `a.b[0]["k"]` into steps. Bare words are attributes, `[n]` indices, `["k"]` map keys. */
export function parsePath(s: string): AttributePath {
  const steps: PathStep[] = [];
  const re = /\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < s.length && (m = re.exec(s)) !== null) {
    if (m[1] !== undefined) steps.push({ attribute: m[1] });
    else if (m[2] !== undefined) steps.push({ index: Number(m[2]) });
    else if (m[3] !== undefined) steps.push({ key: JSON.parse(m[3]) as string });
  }
  if (re.lastIndex !== s.length && s.length > 0) throw new Error(`invalid attribute path "${s}"`);
  return steps;
}

export function toPath(p: PathLike): AttributePath {
  return typeof p === "string" ? parsePath(p) : p;
}

/** Renders a path as `a.b[0]["k"]`. */
export function formatPath(p: AttributePath): string {
  let out = "";
  for (const s of p) {
    if ("attribute" in s) out += out === "" ? s.attribute : `.${s.attribute}`;
    else if ("index" in s) out += `[${s.index}]`;
    else out += `[${JSON.stringify(s.key)}]`;
  }
  return out;
}

export type Severity = "error" | "warning";

export interface Diagnostic {
  readonly severity: Severity;
  /** One short line shown in bold. */
  readonly summary: string;
  /** Explanation; never a stack trace. */
  readonly detail?: string;
  /** The config attribute this is about. */
  readonly path?: AttributePath;
}

/** A collector handed to every resource call. Add errors instead of throwing when the caller can go on. */
export class Diagnostics {
  readonly items: Diagnostic[] = [];

  error(summary: string, detail?: string, path?: PathLike): this {
    return this.add({ severity: "error", summary, ...(detail ? { detail } : {}), ...(path !== undefined ? { path: toPath(path) } : {}) });
  }

  warning(summary: string, detail?: string, path?: PathLike): this {
    return this.add({ severity: "warning", summary, ...(detail ? { detail } : {}), ...(path !== undefined ? { path: toPath(path) } : {}) });
  }

  add(...d: Diagnostic[]): this {
    this.items.push(...d);
    return this;
  }

  hasErrors(): boolean {
    return this.items.some((d) => d.severity === "error");
  }
}

/**
 * Throw this from a resource to end the call with exactly these diagnostics (one or more). Any other thrown error
 * becomes one error diagnostic with the error's message as detail and no stack.
 */
export class DiagnosticError extends Error {
  override name = "DiagnosticError";
  readonly diagnostics: readonly Diagnostic[];
  constructor(summary: string, detail?: string, path?: PathLike);
  constructor(diagnostics: readonly Diagnostic[]);
  constructor(a: string | readonly Diagnostic[], detail?: string, path?: PathLike) {
    const diags: readonly Diagnostic[] =
      typeof a === "string"
        ? [{ severity: "error", summary: a, ...(detail ? { detail } : {}), ...(path !== undefined ? { path: toPath(path) } : {}) }]
        : a;
    super(diags.map((d) => d.summary).join("; "));
    this.diagnostics = diags;
  }
}
