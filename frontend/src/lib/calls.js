// Words for the call fields the activity pages show.
import { gettext, pgettext } from './i18n.js'

export function directionLabel(direction) {
  return {
    incoming: pgettext('call', 'Incoming'),
    outgoing: pgettext('call', 'Outgoing'),
    callback: pgettext('call', 'Callback'),
  }[direction] || direction || ''
}

export function resultLabel(result) {
  return {
    answered: pgettext('call', 'Answered'),
    missed: pgettext('call', 'Missed'),
    busy: pgettext('call', 'Busy'),
    failed: pgettext('call', 'Failed'),
    in_progress: pgettext('call', 'In progress'),
  }[result] || result || ''
}

export function resultColor(result) {
  return { answered: 'air-primary-success', missed: 'air-primary-warning', busy: 'air-primary-warning', failed: 'air-primary-alert' }[result] || 'air-secondary'
}

export function deliveryLabel(call) {
  if (call.delivered === false) return gettext('Not delivered to Bitrix24')
  if (call.delivered === true) return gettext('In Bitrix24')
  return gettext('Being delivered')
}

export function callList(data) {
  return Array.isArray(data) ? data : (data && (data.calls || data.results)) || []
}
