// The activity API's call rows (inportal/activity): words for their fields, in one place.
import { gettext, pgettext } from './i18n.js'

export function directionLabel(call) {
  if (call.origin === 'click_to_call') return pgettext('call', 'Click-to-call')
  if (call.origin === 'callback') return pgettext('call', 'Callback')
  return { inbound: pgettext('call', 'Incoming'), outbound: pgettext('call', 'Outgoing') }[call.direction] || ''
}

// answered / missed / in progress / not delivered, as the viewer reads a call list
export function outcome(call) {
  if (call.status === 'dead') return 'failed'
  if (!call.ended_at && !call.finished) return 'in_progress'
  return call.answered_by ? 'answered' : 'missed'
}

export function outcomeLabel(call) {
  return {
    answered: pgettext('call', 'Answered'),
    missed: pgettext('call', 'Not answered'),
    failed: pgettext('call', 'Not delivered'),
    in_progress: pgettext('call', 'In progress'),
  }[outcome(call)]
}

export function outcomeColor(call) {
  return { answered: 'air-primary-success', missed: 'air-primary-warning', failed: 'air-primary-alert' }[outcome(call)] || 'air-secondary'
}

export function durationOf(call) {
  if (!call.started_at || !call.ended_at) return 0
  return Math.max(0, (new Date(call.ended_at) - new Date(call.started_at)) / 1000)
}

export function recordingLabel(call) {
  return {
    attached: gettext('Attached in Bitrix24'),
    failed: gettext('Could not be attached'),
  }[call.recording] || gettext('none')
}

export function rowsOf(data) {
  return Array.isArray(data) ? data : (data && (data.results || data.calls)) || []
}
