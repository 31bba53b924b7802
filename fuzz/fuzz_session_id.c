/*-------------------------------------------------------------------------
 *
 * fuzz_session_id.c
 *		libFuzzer harness for the session string parser.
 *
 * Feeds arbitrary bytes to ks_parse_session_id() and ks_split_sql_id()
 * under AddressSanitizer and UndefinedBehaviorSanitizer, and checks every
 * answer against a reference written differently: a POSIX regular expression for the shape
 * and digit-string comparisons for the ranges (an ID's last ten digits are
 * its local part, the digits before them its node).  Any disagreement
 * aborts.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  fuzz/fuzz_session_id.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_id.h"

static regex_t shape;
static regex_t sql_id_shape;

/*
 * The reference split of CANCEL SQL's string: the SQL_ID part is after the
 * last comma, when there are three parts and the third is no @N, or four
 * or more; strtoll() reads its value.
 */
static int
reference_sql_id(const char *s, size_t len, size_t *session_len,
				 long long *value)
{
	char	   *copy;
	const char *last = NULL;
	size_t		commas = 0;
	size_t		i;
	int			result;

	for (i = 0; i < len; i++)
		if (s[i] == ',')
		{
			commas++;
			last = s + i;
		}
	*session_len = len;
	if (commas < 2)
		return KS_SQL_ID_NONE;
	for (i = 1; last + i < s + len && (last[i] == ' ' || last[i] == '\t'); i++)
		;
	if (commas == 2 && last + i < s + len && last[i] == '@')
		return KS_SQL_ID_NONE;
	*session_len = (size_t) (last - s);
	copy = malloc(s + len - last);
	memcpy(copy, last + 1, s + len - last - 1);
	copy[s + len - last - 1] = '\0';
	result = KS_SQL_ID_INVALID;
	if (memchr(last + 1, '\0', s + len - last - 1) == NULL &&
		regexec(&sql_id_shape, copy, 0, NULL, 0) == 0)
	{
		errno = 0;
		*value = strtoll(copy, NULL, 10);
		if (errno == 0)
			result = KS_SQL_ID_OK;
	}
	free(copy);
	return result;
}

/* Skip leading zeros, keeping one digit. */
static void
strip_zeros(const char **digits, size_t *len)
{
	while (*len > 1 && **digits == '0')
	{
		(*digits)++;
		(*len)--;
	}
}

static unsigned long long
value_of(const char *digits, size_t len)
{
	unsigned long long v = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		v = v * 10 + (unsigned) (digits[i] - '0');
	return v;
}

/* Digits that fit in 32 bits, compared as text with "4294967295". */
static int
ref_u32(const char *digits, size_t len, unsigned long long *out)
{
	strip_zeros(&digits, &len);
	if (len > 10 || (len == 10 && memcmp(digits, "4294967295", 10) > 0))
		return 0;
	*out = value_of(digits, len);
	return 1;
}

/* An ID: up to four digits of node, then a nonzero 32-bit local part. */
static int
ref_id(const char *digits, size_t len, unsigned long long *id, int *node)
{
	unsigned long long local;
	size_t		node_len;

	strip_zeros(&digits, &len);
	if (len > 14)
		return 0;
	node_len = len > 10 ? len - 10 : 0;
	if (!ref_u32(digits + node_len, len - node_len, &local) || local == 0)
		return 0;
	*node = (int) value_of(digits, node_len);
	*id = value_of(digits, len);
	return 1;
}

/* KS_SESSION_* of the reference, and what it names. */
static int
reference(const char *s, size_t len, KsSessionRef *ref)
{
	char	   *copy;
	regmatch_t	m[6];
	int			result = KS_SESSION_INVALID;

	if (memchr(s, '\0', len) != NULL)
		return KS_SESSION_INVALID;
	copy = malloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	if (regexec(&shape, copy, 6, m, 0) == 0)
	{
		unsigned long long id;
		unsigned long long serial = 0;
		unsigned long long at = 0;
		int			id_node;
		int			ok;

		ok = ref_id(copy + m[1].rm_so, m[1].rm_eo - m[1].rm_so, &id, &id_node);
		if (ok && m[3].rm_so >= 0)
			ok = ref_u32(copy + m[3].rm_so, m[3].rm_eo - m[3].rm_so, &serial);
		if (ok && m[5].rm_so >= 0)
		{
			const char *d = copy + m[5].rm_so;
			size_t		dlen = m[5].rm_eo - m[5].rm_so;

			strip_zeros(&d, &dlen);
			at = dlen <= 4 ? value_of(d, dlen) : 0;
			ok = at != 0;
		}
		if (ok && at != 0 && id_node != 0 && (unsigned long long) id_node != at)
			result = KS_SESSION_NODE_MISMATCH;
		else if (ok)
		{
			result = KS_SESSION_OK;
			ref->id = (int64_t) id;
			ref->serial = (uint32_t) serial;
			ref->has_serial = m[3].rm_so >= 0;
			ref->node = (int) at;
		}
	}
	free(copy);
	return result;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	if (regcomp(&shape,
				"^[ \t]*([0-9]+)[ \t]*(,[ \t]*([0-9]+)[ \t]*(,[ \t]*@([0-9]+)[ \t]*)?)?$",
				REG_EXTENDED) != 0 ||
		regcomp(&sql_id_shape, "^[ \t]*[+-]?[0-9]+[ \t]*$",
				REG_EXTENDED | REG_NOSUB) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	KsSessionRef got = {0};
	KsSessionRef want = {0};
	KsSessionParse got_result;
	int			want_result;

	got_result = ks_parse_session_id((const char *) data, size, &got);
	want_result = reference((const char *) data, size, &want);

	if ((int) got_result != want_result ||
		(got_result == KS_SESSION_OK &&
		 (got.id != want.id || got.serial != want.serial ||
		  got.has_serial != want.has_serial || got.node != want.node)))
	{
		fprintf(stderr, "parser: %d id=%lld serial=%u has=%d node=%d; "
				"reference: %d id=%lld serial=%u has=%d node=%d\n",
				(int) got_result, (long long) got.id, got.serial,
				got.has_serial, got.node, want_result, (long long) want.id,
				want.serial, want.has_serial, want.node);
		abort();
	}
	/* CANCEL SQL's SQL_ID part splits as the reference splits it. */
	{
		size_t		got_len;
		size_t		want_len;
		int64_t		got_id = 0;
		long long	want_id = 0;
		int			got_sql = ks_split_sql_id((const char *) data, size,
											  &got_len, &got_id);
		int			want_sql = reference_sql_id((const char *) data, size,
												&want_len, &want_id);

		if (got_sql != want_sql || got_len != want_len ||
			(got_sql == KS_SQL_ID_OK && got_id != want_id))
		{
			fprintf(stderr, "SQL_ID split: %d len=%zu id=%lld; reference: %d len=%zu id=%lld\n",
					got_sql, got_len, (long long) got_id, want_sql, want_len,
					want_id);
			abort();
		}
	}

	/* An ID with a node: its parts name it back. */
	if (got_result == KS_SESSION_OK &&
		(!ks_id_valid(ks_ref_id(&got)) ||
		 ks_id_local(ks_ref_id(&got)) != ks_id_local(got.id) ||
		 (got.node != 0 && ks_id_node(ks_ref_id(&got)) != got.node)))
	{
		fprintf(stderr, "ID %lld @%d does not name itself back\n",
				(long long) got.id, got.node);
		abort();
	}
	return 0;
}
