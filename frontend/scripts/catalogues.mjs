// Vite plugin: `import catalogues from 'virtual:catalogues'` gives the djangojs gettext catalogues of
// locale/<lang>/LC_MESSAGES/djangojs.po, compiled into the bundle at build time, in the shape of Django's
// JSONCatalog: {lang: {catalog: {msgid | "context\x04msgid": str | [forms]}, plural: (n) => index}}.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import gettextParser from 'gettext-parser'

const VIRTUAL = 'virtual:catalogues'
const RESOLVED = '\0' + VIRTUAL

function pluralExpression(headers) {
  const forms = headers['Plural-Forms'] || headers['plural-forms'] || ''
  const match = /plural=([^;]+)/.exec(forms)
  const expression = match ? match[1].trim() : '(n != 1)'
  if (!/^[\sn0-9%!=<>&|?:()]+$/.test(expression)) {
    throw new Error(`unexpected Plural-Forms expression: ${expression}`)
  }
  return expression
}

export function readCatalogue(file) {
  const po = gettextParser.po.parse(readFileSync(file))
  const catalog = {}
  for (const [context, messages] of Object.entries(po.translations)) {
    for (const [msgid, message] of Object.entries(messages)) {
      if (!msgid) continue // the header
      const forms = message.msgstr.filter((s) => s !== '')
      if (!forms.length) continue // untranslated: the English msgid shows
      const key = context ? `${context}\u0004${msgid}` : msgid
      catalog[key] = message.msgid_plural ? message.msgstr : message.msgstr[0]
    }
  }
  return { catalog, plural: pluralExpression(po.headers) }
}

export default function catalogues({ localeDir, languages }) {
  const files = Object.fromEntries(languages.map((lang) => [lang, join(localeDir, lang, 'LC_MESSAGES', 'djangojs.po')]))
  return {
    name: 'telephony:catalogues',
    resolveId(id) {
      return id === VIRTUAL ? RESOLVED : null
    },
    load(id) {
      if (id !== RESOLVED) return null
      const entries = []
      for (const [lang, file] of Object.entries(files)) {
        const { catalog, plural } = existsSync(file) ? readCatalogue(file) : { catalog: {}, plural: '(n != 1)' }
        if (existsSync(file)) this.addWatchFile(file)
        entries.push(`${JSON.stringify(lang)}: {catalog: ${JSON.stringify(catalog)}, plural: (n) => Number(${plural})}`)
      }
      return `export default {${entries.join(',\n')}}\n`
    },
  }
}
