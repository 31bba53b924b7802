/*-------------------------------------------------------------------------
 *
 * fuzz_session_id.c
 *		libFuzzer harness for the session string parser.
 *
 * Feeds arbitrary bytes to ks_parse_session_id() under AddressSanitizer
 * and UndefinedBehaviorSanitizer, and checks every answer against a
 * reference written differently: a POSIX regular expression for the shape
 * and a digit-string comparison for the range.  Any disagreement aborts.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  fuzz/fuzz_session_id.c
 *
 *-------------------------------------------------------------------------
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_id.h"

static regex_t shape;

/* Digits without leading zeros, compared as text with "4294967295". */
static int
ref_number(const char *digits, size_t len, int allow_zero, uint32_t *out)
{
	unsigned long long v = 0;
	size_t		i;

	while (len > 1 && *digits == '0')
	{
		digits++;
		len--;
	}
	if (len > 10 || (len == 10 && memcmp(digits, "4294967295", 10) > 0))
		return 0;
	for (i = 0; i < len; i++)
		v = v * 10 + (unsigned) (digits[i] - '0');
	if (v == 0 && !allow_zero)
		return 0;
	*out = (uint32_t) v;
	return 1;
}

static int
reference(const char *s, size_t len, uint32_t *sid, uint32_t *serial,
		  int *has_serial)
{
	char	   *copy;
	regmatch_t	m[4];
	int			ok = 0;

	if (memchr(s, '\0', len) != NULL)
		return 0;
	copy = malloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	if (regexec(&shape, copy, 4, m, 0) == 0)
	{
		ok = ref_number(copy + m[1].rm_so, m[1].rm_eo - m[1].rm_so, 0, sid);
		*has_serial = m[3].rm_so >= 0;
		*serial = 0;
		if (ok && *has_serial)
			ok = ref_number(copy + m[3].rm_so, m[3].rm_eo - m[3].rm_so, 1, serial);
	}
	free(copy);
	return ok;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	if (regcomp(&shape, "^[ \t]*([0-9]+)[ \t]*(,[ \t]*([0-9]+)[ \t]*)?$",
				REG_EXTENDED) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t	sid = 0,
				serial = 0,
				rsid = 0,
				rserial = 0;
	bool		has_serial = false;
	int			rhas_serial = 0;
	bool		got;
	int			want;

	got = ks_parse_session_id((const char *) data, size, &sid, &serial, &has_serial);
	want = reference((const char *) data, size, &rsid, &rserial, &rhas_serial);

	if (got != (want != 0) ||
		(got && (sid != rsid || serial != rserial || has_serial != (rhas_serial != 0))))
	{
		fprintf(stderr, "parser: %d sid=%u serial=%u has=%d; reference: %d sid=%u serial=%u has=%d\n",
				got, sid, serial, has_serial, want, rsid, rserial, rhas_serial);
		abort();
	}
	return 0;
}
