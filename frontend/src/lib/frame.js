// The Bitrix24 side of the page, through the official JS SDK: the frame's init, installFinish, fitting the
// frame's height to the page after each render, the user picker, opening a profile or a CRM card in the
// portal's slider, and the viewer's current AUTH_ID (sent as X-Bitrix24-Auth with every change).
import { initializeB24Frame } from '@bitrix24/b24jssdk'

let b24 = null

export async function connectFrame() {
  b24 = await initializeB24Frame()
  return b24
}

export function isFramed() {
  return b24 !== null
}

export function isInstallMode() {
  return b24 !== null && b24.isInstallMode
}

export async function currentAuthId() {
  // getAuthData() is false once the AUTH_ID's lifetime is over: ask the portal for a fresh one.
  let auth = b24.auth.getAuthData()
  if (!auth) auth = await b24.auth.refreshAuth()
  return auth.access_token
}

export async function renewAuthId() {
  const auth = await b24.auth.refreshAuth()
  return auth.access_token
}

// Bitrix24's own employee picker; null when the dialog is closed without a choice (the portal never answers).
export async function pickUser() {
  const user = await b24.dialog.selectUser()
  if (!user || !user.id) return null
  return { id: Number(user.id), name: user.name || '', photo: user.photo || '' }
}

function openInSlider(path) {
  return b24.slider.openPath(b24.slider.getUrl(path)).catch(() => null)
}

export function openUserProfile(userId) {
  return openInSlider(`/company/personal/user/${Number(userId)}/`)
}

export function openCrmEntity(entityType, entityId) {
  const kind = String(entityType || '').toLowerCase()
  if (!['lead', 'contact', 'company', 'deal'].includes(kind)) return Promise.resolve(null)
  return openInSlider(`/crm/${kind}/details/${Number(entityId)}/`)
}

// Resolves never in Bitrix24: the portal marks the app installed and reloads its page with the app URL.
export function installFinish() {
  return b24.installFinish()
}

export function setTitle(title) {
  if (b24) b24.parent.setTitle(title).catch(() => null)
}

// ---------------------------------------------------------------------------------------- frame height
// The frame is as tall as the page: no scroll bars inside it (Marketplace rule). fitWindow() measures the
// document, which is never shorter than the frame itself, so a page that got shorter would keep its old
// height; the content box is measured instead and sent as resizeWindow('100%', height).
let lastHeight = 0
let pending = null

export function fitFrame(root) {
  if (!b24 || !root) return
  if (pending) cancelAnimationFrame(pending)
  pending = requestAnimationFrame(() => {
    pending = null
    const height = Math.ceil(root.getBoundingClientRect().height)
    if (height > 0 && height !== lastHeight) {
      lastHeight = height
      b24.parent.message.send('resizeWindow', { width: '100%', height, isSafely: true }).catch(() => null)
    }
  })
}

export function keepFrameFitted(root) {
  const observer = new ResizeObserver(() => fitFrame(root))
  observer.observe(root)
  fitFrame(root)
  return () => observer.disconnect()
}
