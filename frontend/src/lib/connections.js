// The shapes of the connections API, in one place.
export function connectionList(data) {
  return Array.isArray(data) ? data : (data && (data.connections || data.results)) || []
}

// POST connections / POST connections/{id}/rotate: the secret comes once, next to the connection.
export function issued(data) {
  const connection = (data && data.connection) || data || {}
  return {
    connection,
    secret: (data && data.secret) || '',
    eventsUrl: (data && data.events_url) || connection.events_url || '',
    pairingCode: (data && data.pairing_code) || '',
  }
}
