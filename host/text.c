/* text.c - text from outside, made safe to print; see text.h. */
#include "text.h"

#include <string.h>

size_t bsi_text_utf8_len(const char *str, size_t left)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

bool bsi_text_is_utf8(const char *s, size_t len)
{
	for (size_t i = 0, n; i < len; i += n)
		if ((n = bsi_text_utf8_len(s + i, len - i)) == 0)
			return false;
	return true;
}

/* The code point of the n-byte valid sequence at s. */
static unsigned code_point(const unsigned char *s, size_t n)
{
	static const unsigned char lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
	unsigned cp = s[0] & lead_mask[n];

	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (s[i] & 0x3f);
	return cp;
}

static bool is_control(unsigned cp)
{
	return (cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
	       cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

bool bsi_text_has_control(const char *s, size_t len)
{
	for (size_t i = 0, n; i < len; i += n) {
		n = bsi_text_utf8_len(s + i, len - i);
		if (n > 0 && is_control(code_point((const unsigned char *)s + i, n)))
			return true;
		if (n == 0)
			n = 1;
	}
	return false;
}

void bsi_text_clean(char *buf, size_t cap, const char *s, size_t len)
{
	size_t o = 0;

	if (cap == 0)
		return;
	for (size_t i = 0, n; i < len; i += n) {
		n = bsi_text_utf8_len(s + i, len - i);
		if (n == 0 || is_control(code_point((const unsigned char *)s + i, n))) {
			n = n ? n : 1;
			if (o + 1 >= cap)
				break;
			buf[o++] = '?';
			continue;
		}
		if (o + n >= cap)
			break;
		memmove(buf + o, s + i, n);
		o += n;
	}
	buf[o] = '\0';
}
