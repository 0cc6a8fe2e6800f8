// Names for the user ids the settings API returns (it answers ids; the employees list has the names).
export async function namesOf(api) {
  try {
    const data = await api.get('employees')
    return new Map((data.users || []).map((u) => [Number(u.id), u.name || '']))
  } catch {
    return new Map()
  }
}

export function personOf(id, names, ...sources) {
  if (!id) return null
  for (const source of sources) if (source && Number(source.id) === Number(id) && source.name) return { id: Number(id), name: source.name }
  return { id: Number(id), name: names.get(Number(id)) || '' }
}
