// Types for the frp stand-in's exported helpers (frp.mjs), used by the unit tests.
export function keyPaths(value: unknown, prefix?: string): string[]
export function exampleKeys(text: string): Set<string>
export function knownKeys(role: 'frpc' | 'frps'): Set<string> | undefined
export function loadConfig(
  role: 'frpc' | 'frps',
  file: string,
): { config?: Record<string, unknown>; error?: string; warning?: string }
