// The app's JSON API (/bitrix24/app/api/v1/, OpenAPI schema at .../schema/). The session token from the
// page's boot data goes in `Authorization: Bearer`; every change also carries the viewer's current AUTH_ID
// in `X-Bitrix24-Auth` (the server asks Bitrix24 whether they are still an admin). No cookies at all: the
// frame is a third-party context where browsers may block them.
import { currentAuthId, renewAuthId } from './frame.js'
import { gettext } from './i18n.js'

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || gettext('The request failed. Try again.'))
    this.status = status
    this.code = (body && body.error) || 'error'
    this.fields = (body && body.fields) || {}
  }
}

export function createApi(boot) {
  let session = boot.session
  let expiresAt = Number(boot.sessionExpiresAt) || 0
  const base = boot.apiBase

  async function send(method, path, body, authId) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${session}` }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (authId) headers['X-Bitrix24-Auth'] = authId
    try {
      return await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      })
    } catch {
      throw new ApiError(0, { error: 'network', detail: gettext('The connector cannot be reached. Check your connection and try again.') })
    }
  }

  let renewing = null

  // One renewal at a time: the pages load several things at once.
  function renewSession() {
    if (!renewing) {
      renewing = (async () => {
        const response = await send('POST', 'session', {}, await renewAuthId())
        const data = await response.json().catch(() => ({}))
        if (!response.ok || !data.session) throw new ApiError(response.status, data)
        session = data.session
        expiresAt = Number(data.sessionExpiresAt) || 0
      })().finally(() => { renewing = null })
    }
    return renewing
  }

  // The session lives about an hour: renew it just before it ends rather than after a refused request.
  const expiring = () => expiresAt > 0 && Date.now() / 1000 > expiresAt - 30

  async function request(method, path, body) {
    const writes = method !== 'GET'
    if (expiring()) await renewSession()
    let response = await send(method, path, body, writes ? await currentAuthId() : null)
    if (response.status === 401) {
      // the session token expired (it lives about an hour): the portal vouches for the viewer again
      await renewSession()
      response = await send(method, path, body, writes ? await currentAuthId() : null)
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null)
    if (!response.ok) throw new ApiError(response.status, data)
    return data
  }

  return {
    get: (path) => request('GET', path),
    post: (path, body = {}) => request('POST', path, body),
    put: (path, body) => request('PUT', path, body),
    patch: (path, body) => request('PATCH', path, body),
    delete: (path) => request('DELETE', path),
  }
}
