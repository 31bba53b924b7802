/*-------------------------------------------------------------------------
 *
 * session_id.c
 *		Parser of the session string of ALTER SYSTEM KILL SESSION.
 *
 * Accepts exactly the forms 'sid', 'sid, serial#' and 'sid, serial#, @N'
 * and nothing else: a string that names a session wrongly must never be
 * truncated or guessed into one that names another.  CANCEL SQL's form
 * may end in a SQL_ID, split off first.
 *
 * A leaf, pure C: it calls no other file of the project.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  session_id.c
 *
 *-------------------------------------------------------------------------
 */
#include "session_id.h"

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void
skip_blanks(const char **pos, const char *end)
{
	while (*pos < end && is_blank(**pos))
		(*pos)++;
}

/*
 * Parse one number: one or more ASCII digits, at most max; leading zeros
 * do not count towards that.
 */
static bool
parse_number(const char **pos, const char *end, int64_t max, int64_t *value)
{
	const char *p = *pos;
	int64_t		v = 0;
	bool		any = false;

	while (p < end && *p >= '0' && *p <= '9')
	{
		v = v * 10 + (*p - '0');
		if (v > max)
			return false;
		any = true;
		p++;
	}
	if (!any)
		return false;
	*pos = p;
	*value = v;
	return true;
}

KsSessionParse
ks_parse_session_id(const char *str, size_t len, KsSessionRef *ref)
{
	const char *p = str;
	const char *end = str + len;
	int64_t		id;
	int64_t		serial = 0;
	int64_t		node = 0;
	bool		with_serial = false;

	if (str == NULL)
		return KS_SESSION_INVALID;
	skip_blanks(&p, end);
	if (!parse_number(&p, end, (KS_NODE_MAX + 1) * KS_NODE_FACTOR - 1, &id) ||
		!ks_id_valid(id))
		return KS_SESSION_INVALID;
	skip_blanks(&p, end);
	if (p < end && *p == ',')
	{
		p++;
		skip_blanks(&p, end);
		if (!parse_number(&p, end, KS_SESSION_ID_MAX, &serial))
			return KS_SESSION_INVALID;
		skip_blanks(&p, end);
		with_serial = true;
		if (p < end && *p == ',')
		{
			p++;
			skip_blanks(&p, end);
			if (p == end || *p != '@')
				return KS_SESSION_INVALID;
			p++;
			if (!parse_number(&p, end, KS_NODE_MAX, &node) || node == 0)
				return KS_SESSION_INVALID;
			skip_blanks(&p, end);
		}
	}
	if (p != end)
		return KS_SESSION_INVALID;

	ref->id = id;
	ref->serial = (uint32_t) serial;
	ref->has_serial = with_serial;
	ref->node = (int) node;
	if (node != 0 && ks_id_node(id) != 0 && ks_id_node(id) != node)
		return KS_SESSION_NODE_MISMATCH;
	return KS_SESSION_OK;
}

KsSqlIdParse
ks_split_sql_id(const char *str, size_t len, size_t *session_len,
				int64_t *sql_id)
{
	const char *end = str + len;
	const char *last = NULL;
	const char *p;
	int			commas = 0;
	bool		negative = false;
	uint64_t	v = 0;
	uint64_t	limit;
	bool		any = false;

	*session_len = len;
	if (str == NULL)
		return KS_SQL_ID_NONE;
	for (p = str; p < end; p++)
	{
		if (*p == ',')
		{
			commas++;
			last = p;
		}
	}
	if (commas < 2)
		return KS_SQL_ID_NONE;
	p = last + 1;
	skip_blanks(&p, end);
	if (commas == 2 && p < end && *p == '@')
		return KS_SQL_ID_NONE;

	*session_len = (size_t) (last - str);
	if (p < end && (*p == '-' || *p == '+'))
	{
		negative = *p == '-';
		p++;
	}
	/* INT64_MAX, or its magnitude plus one for a negative value */
	limit = negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
	while (p < end && *p >= '0' && *p <= '9')
	{
		uint64_t	digit = (uint64_t) (*p - '0');

		if (v > (limit - digit) / 10)
			return KS_SQL_ID_INVALID;
		v = v * 10 + digit;
		any = true;
		p++;
	}
	skip_blanks(&p, end);
	if (!any || p != end)
		return KS_SQL_ID_INVALID;
	if (negative)
		*sql_id = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v;
	else
		*sql_id = (int64_t) v;
	return KS_SQL_ID_OK;
}
