import './main.css'
import { createApp } from 'vue'
import b24UiPlugin from '@bitrix24/b24ui-nuxt/vue-plugin'
import App from './App.vue'
import { createApi } from './lib/api.js'
import { connectFrame } from './lib/frame.js'
import { gettext, i18nPlugin, setLanguage } from './lib/i18n.js'
import { createAppRouter } from './router.js'
import { appStateKey, createAppState } from './lib/state.js'
import { setFormatLocale } from './lib/format.js'

function readBoot() {
  const node = document.getElementById('app-boot')
  if (!node) return null
  try {
    return JSON.parse(node.textContent)
  } catch {
    return null
  }
}

function showProblem(message) {
  const root = document.getElementById('app')
  if (!root) return
  const box = document.createElement('p')
  box.className = 'p-6 text-base'
  box.id = 'app-problem'
  box.textContent = message
  root.replaceChildren(box)
}

async function start() {
  const boot = readBoot()
  const lang = (boot && boot.lang) || document.documentElement.lang || 'en'
  setLanguage(lang)
  setFormatLocale(lang)
  if (!boot || !boot.session) {
    showProblem(gettext('Open this app from your Bitrix24.'))
    return
  }
  try {
    await connectFrame()
  } catch {
    showProblem(gettext('Open this app from your Bitrix24: it works inside the portal only.'))
    return
  }
  const state = createAppState(boot, createApi(boot))
  const app = createApp(App)
  app.use(createAppRouter(state))
  app.use(b24UiPlugin)
  app.use(i18nPlugin)
  app.provide(appStateKey, state)
  app.mount('#app')
}

start()
