/*
 * text.h - text from outside, made safe to print.
 *
 * Text bsi did not write (a process's comm, recipe file names, summaries,
 * reasons, a git server's messages) reaches terminals and logs.  A
 * terminal acts on some characters instead of showing them: C0 controls
 * (escape sequences, carriage returns that overwrite a line), DEL, C1
 * controls (U+0080..U+009F, which some terminals take as CSI), and the
 * bidirectional overrides and isolates (and U+2028/U+2029) that make text
 * read in another order than it is stored.  Such characters, and bytes
 * that are not UTF-8, are shown as '?'.  Tab stays.
 */
#ifndef BSI_TEXT_H
#define BSI_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (at most left bytes, left > 0),
 * 0 when the bytes there are not UTF-8 (overlong, surrogate, past U+10FFFF). */
size_t bsi_text_utf8_len(const char *s, size_t left);

/* True when all len bytes of s are UTF-8. */
bool bsi_text_is_utf8(const char *s, size_t len);

/* True when s holds a character a terminal would act on (see above). */
bool bsi_text_has_control(const char *s, size_t len);

/*
 * Copy at most cap-1 bytes of s (len bytes) into buf, NUL-terminated, with
 * each control character and each byte that is not UTF-8 replaced by '?';
 * a character is never cut in half.  buf may be s (cleaning in place).
 */
void bsi_text_clean(char *buf, size_t cap, const char *s, size_t len);

#endif
