/*-------------------------------------------------------------------------
 *
 * session_id.c
 *		Parser of the session string of ALTER SYSTEM KILL SESSION.
 *
 * Accepts exactly the forms 'sid' and 'sid, serial#' and nothing else: a
 * string that names a session wrongly must never be truncated or guessed
 * into one that names another.
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

/*
 * Parse one part: blanks, one or more ASCII digits, blanks.  The value must
 * fit in 32 bits unsigned; leading zeros do not count towards that.
 */
static bool
parse_part(const char **pos, const char *end, uint32_t *value)
{
	const char *p = *pos;
	uint64_t	v = 0;
	bool		any = false;

	while (p < end && is_blank(*p))
		p++;
	while (p < end && *p >= '0' && *p <= '9')
	{
		v = v * 10 + (uint64_t) (*p - '0');
		if (v > KS_SESSION_ID_MAX)
			return false;
		any = true;
		p++;
	}
	if (!any)
		return false;
	while (p < end && is_blank(*p))
		p++;

	*pos = p;
	*value = (uint32_t) v;
	return true;
}

bool
ks_parse_session_id(const char *str, size_t len,
					uint32_t *sid, uint32_t *serial, bool *has_serial)
{
	const char *p = str;
	const char *end = str + len;
	uint32_t	s;
	uint32_t	ser = 0;
	bool		with_serial = false;

	if (str == NULL)
		return false;
	if (!parse_part(&p, end, &s) || s == 0)
		return false;
	if (p < end && *p == ',')
	{
		p++;
		if (!parse_part(&p, end, &ser))
			return false;
		with_serial = true;
	}
	if (p != end)
		return false;

	*sid = s;
	*serial = ser;
	*has_serial = with_serial;
	return true;
}
