// gettext for the pages, with the names and behaviour of Django's JavaScript catalogue (djangojs domain):
// gettext, ngettext, pgettext, npgettext, interpolate. The msgids are English; `manage.py makemessages
// -d djangojs` finds them (see scripts/extract-messages.mjs), the catalogues are compiled into the bundle.
import catalogues from 'virtual:catalogues'

let active = catalogues.en

export function setLanguage(lang) {
  active = catalogues[lang] || catalogues.en
}

function lookup(key) {
  return active.catalog[key]
}

export function gettext(msgid) {
  const value = lookup(msgid)
  return typeof value === 'string' ? value : msgid
}

export function ngettext(singular, plural, count) {
  const value = lookup(singular)
  if (Array.isArray(value)) return value[active.plural(count)] ?? (count === 1 ? singular : plural)
  return count === 1 ? singular : plural
}

export function pgettext(context, msgid) {
  const value = lookup(`${context}\u0004${msgid}`)
  return typeof value === 'string' ? value : msgid
}

export function npgettext(context, singular, plural, count) {
  const value = lookup(`${context}\u0004${singular}`)
  if (Array.isArray(value)) return value[active.plural(count)] ?? (count === 1 ? singular : plural)
  return count === 1 ? singular : plural
}

// interpolate('%(name)s called', {name: 'Anna'}, true) / interpolate('%s of %s', [1, 2])
export function interpolate(format, values, named = false) {
  if (named) return format.replace(/%\(\w+\)s/g, (match) => String(values[match.slice(2, -2)] ?? ''))
  let index = 0
  return format.replace(/%s/g, () => String(values[index++] ?? ''))
}

export const i18nPlugin = {
  install(app) {
    Object.assign(app.config.globalProperties, { gettext, ngettext, pgettext, npgettext, interpolate })
  },
}
