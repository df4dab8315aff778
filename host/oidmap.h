/*
 * oidmap.h - a map from git object id to pointer.
 *
 * Open addressing, keyed with a random SipHash key (libsodium's
 * crypto_shorthash), so ids a server chose cannot make lookups quadratic.
 * Used by authentication (auth.c) and the mirror's closure check
 * (mirror.c), both of which walk histories a server sent.
 */
#ifndef BSI_OIDMAP_H
#define BSI_OIDMAP_H

#include <git2.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
	git_oid id;
	void *value;
	bool used;
} bsi_oidmap_slot;

typedef struct {
	bsi_oidmap_slot *slots;
	size_t cap, count; /* cap is a power of two */
	uint8_t key[crypto_shorthash_KEYBYTES];
} bsi_oidmap;

/* An empty map sized for about hint entries; free m->slots when done.
 * Call sodium_init() first. */
int bsi_oidmap_init(bsi_oidmap *m, size_t hint);
/* The value stored for id, or NULL. */
void *bsi_oidmap_get(const bsi_oidmap *m, const git_oid *id);
/* Store value (not NULL) for id, replacing any earlier one. */
int bsi_oidmap_put(bsi_oidmap *m, const git_oid *id, void *value);

#endif
