// What every page shares: the boot data of the shell page, the API client, and the wizard's state.
import { inject, reactive } from 'vue'

export const appStateKey = Symbol('app-state')

export function createAppState(boot, api) {
  return reactive({
    boot,
    api,
    isAdmin: Boolean(boot.isAdmin),
    lang: boot.lang === 'ru' ? 'ru' : 'en',
    wizard: { done: Boolean(boot.wizard && boot.wizard.done), step: (boot.wizard && boot.wizard.step) || 'connect' },
    mode: boot.mode === 'wizard' ? 'wizard' : 'app',
    installFinished: Boolean(boot.installFinished),
  })
}

export function useAppState() {
  return inject(appStateKey)
}
