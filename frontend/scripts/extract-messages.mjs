// Updates the djangojs catalogues (locale/{ru,en}/LC_MESSAGES/djangojs.po) from the pages' sources.
//
// Django's makemessages reads JavaScript with xgettext, which cannot read Vue templates: a string inside an
// HTML attribute (:label="gettext('Save')") is invisible to it. So every .vue file is first compiled by
// Vue's own compiler into the plain JavaScript Vue itself runs (render function + script), written to
// frontend/i18n-build/ (not tracked), and makemessages -d djangojs runs over that. Then translate the new
// entries; tests/frontend/test_catalogues.py fails on an untranslated, missing or stale message.
//
//   node scripts/extract-messages.mjs              update locale/{ru,en}/LC_MESSAGES/djangojs.po
//   node scripts/extract-messages.mjs --out DIR    compile into DIR and update DIR/locale/ if DIR has one
//                                                  (how the test checks the catalogues without touching them)
import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compileScript, compileTemplate, parse } from '@vue/compiler-sfc'

const frontend = fileURLToPath(new URL('..', import.meta.url))
const sources = join(frontend, 'src')
const out = join(frontend, 'i18n-build')
const root = join(frontend, '..')

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)])
}

function compileVue(file) {
  const { descriptor, errors } = parse(readFileSync(file, 'utf8'), { filename: file })
  if (errors.length) throw new Error(`${file}: ${errors.map(String).join('; ')}`)
  const parts = []
  const id = relative(sources, file)
  let bindings
  if (descriptor.script || descriptor.scriptSetup) {
    const script = compileScript(descriptor, { id })
    bindings = script.bindings
    parts.push(script.content)
  }
  if (descriptor.template) {
    const template = compileTemplate({ source: descriptor.template.content, filename: file, id, compilerOptions: { bindingMetadata: bindings } })
    if (template.errors.length) throw new Error(`${file}: ${template.errors.map(String).join('; ')}`)
    parts.push(template.code)
  }
  return parts.join('\n')
}

function writeSources(target) {
  // keep a locale/ folder the caller put there (the test's copy of the catalogues)
  mkdirSync(target, { recursive: true })
  for (const entry of readdirSync(target, { withFileTypes: true }).filter((e) => e.name !== 'locale')) {
    rmSync(join(target, entry.name), { recursive: true, force: true })
  }
  for (const file of walk(sources)) {
    const name = relative(sources, file)
    let code = null
    if (file.endsWith('.vue')) code = compileVue(file)
    else if (file.endsWith('.js')) code = readFileSync(file, 'utf8')
    if (code === null) continue
    const dest = join(target, name.replace(/\.vue$/, '.vue.js'))
    mkdirSync(dirname(dest), { recursive: true })
    writeFileSync(dest, code)
  }
  return target
}

function makemessages(dir) {
  // makemessages writes to dir/locale/ when there is one, else to the project's LOCALE_PATHS
  const python = process.env.PYTHON || join(root, '.venv', 'bin', 'python')
  const result = spawnSync(python, [join(root, 'manage.py'), 'makemessages', '--domain', 'djangojs', '--locale', 'ru',
    '--locale', 'en', '--no-obsolete', '--no-location', '--no-wrap', '--extension', 'js'], { cwd: dir, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status || 1)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out')
  const target = at > 0 ? process.argv[at + 1] : out
  makemessages(writeSources(target))
}
