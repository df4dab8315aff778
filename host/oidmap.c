#include "oidmap.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>

int bsi_oidmap_init(bsi_oidmap *m, size_t hint)
{
	size_t cap = 16;

	while (cap < hint * 2)
		cap *= 2;
	m->count = 0;
	m->cap = cap;
	randombytes_buf(m->key, sizeof(m->key));
	if ((m->slots = calloc(cap, sizeof(*m->slots))) == NULL)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	return 0;
}

static size_t slot_index(const bsi_oidmap *m, const git_oid *id)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, id->id, GIT_OID_RAWSZ, m->key);
	memcpy(&v, h, sizeof(v));
	return (size_t)v & (m->cap - 1);
}

static bsi_oidmap_slot *slot_of(const bsi_oidmap *m, const git_oid *id)
{
	size_t i = slot_index(m, id);

	while (m->slots[i].used && !git_oid_equal(&m->slots[i].id, id))
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

void *bsi_oidmap_get(const bsi_oidmap *m, const git_oid *id)
{
	bsi_oidmap_slot *s = slot_of(m, id);

	return s->used ? s->value : NULL;
}

int bsi_oidmap_put(bsi_oidmap *m, const git_oid *id, void *value)
{
	bsi_oidmap_slot *s;

	if ((m->count + 1) * 2 > m->cap) {
		bsi_oidmap_slot *old = m->slots;
		size_t i, oldcap = m->cap;

		if ((m->slots = calloc(oldcap * 2, sizeof(*m->slots))) == NULL) {
			m->slots = old;
			return bsi_error_set(BSI_EFAIL, "out of memory");
		}
		m->cap = oldcap * 2;
		for (i = 0; i < oldcap; i++)
			if (old[i].used)
				*slot_of(m, &old[i].id) = old[i];
		free(old);
	}
	s = slot_of(m, id);
	if (!s->used)
		m->count++;
	s->used = true;
	s->id = *id;
	s->value = value;
	return 0;
}
