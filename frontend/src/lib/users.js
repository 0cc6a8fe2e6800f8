// A "who" as the API returns it: {id, name} objects, or *_id / *_name pairs.
export function userRef(record, key) {
  if (!record) return null
  const value = record[key]
  if (value && typeof value === 'object' && value.id) return { id: Number(value.id), name: value.name || '' }
  const id = record[`${key}_id`]
  return id ? { id: Number(id), name: record[`${key}_name`] || '' } : null
}
