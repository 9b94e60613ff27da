// launchd property lists (XML 1.0, Apple's PropertyList-1.0 DTD): the pieces both the health
// check's agent (lib/monitor/schedule.mts) and frpc's daemon (lib/tunnel/frp-service.mts) are built from.

export function xmlEscape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
}

export const plistString = (v: string) => `<string>${xmlEscape(v)}</string>`
export const plistKey = (k: string) => `<key>${xmlEscape(k)}</key>`

/** A `<array>` of strings (such as ProgramArguments), one item a line. */
export function plistStringArray(values: string[]): string[] {
  return ['<array>', ...values.map((v) => `  ${plistString(v)}`), '</array>']
}

/** A `<dict>` of strings (such as EnvironmentVariables), one key and value a line. */
export function plistStringDict(values: Record<string, string>): string[] {
  const rows = Object.entries(values).flatMap(([k, v]) => [`  ${plistKey(k)}`, `  ${plistString(v)}`])
  return ['<dict>', ...rows, '</dict>']
}

/** The whole document around the lines of its top-level `<dict>`. */
export function plistDocument(dictLines: string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    ...dictLines.map((l) => `  ${l}`),
    '</dict>',
    '</plist>',
    '',
  ].join('\n')
}
