/*-------------------------------------------------------------------------
 *
 * oracle_hint.c
 *		The HINT that turns ALTER SYSTEM KILL SESSION into its PostgreSQL
 *		equivalent.
 *
 * PostgreSQL's grammar rejects ALTER SYSTEM KILL before any extension code
 * runs.  Its syntax error gets a HINT with the call that does the same
 * here, built by the scanner of sql_scan.c from the session string as
 * PostgreSQL's lexer reads it.
 *
 * A leaf: it calls nothing of the project but sql_scan.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  oracle_hint.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"

#include "oracle_hint.h"
#include "sql_scan.h"

/*
 * Add to a syntax error in one of the Oracle or MySQL statements that
 * sql_scan.h lists the statement that does the same here, or what is wrong
 * with its session string; node is this server's node number.  Runs
 * inside emit_log_hook (see
 * kill_session.c): the scanner raises no error and allocates nothing.
 *
 * The HINT goes to the client and the log in the server's encoding, so it
 * must be valid there, or its conversion for the client would fail and
 * replace the syntax error.  Names come from the query's text, which the
 * server has already checked; a value decoded from escapes could still
 * hold any bytes, so the HINT is checked, and written with placeholders if
 * it is not valid.
 */
void
ks_add_oracle_hint(ErrorData *edata, int node)
{
	const char *query;
	const char *p;
	int			pos;
	int			i;
	size_t		len;
	char		hint[KS_HINT_MAX];
	bool		placeholders;

	if (edata->internalquery != NULL)
	{
		query = edata->internalquery;
		pos = edata->internalpos;
	}
	else
	{
		query = debug_query_string;
		pos = edata->cursorpos;
	}
	if (query == NULL || pos <= 0)
		return;

	/* The error's character position to a byte offset. */
	len = strlen(query);
	p = query;
	for (i = 1; i < pos && *p; i++)
		p += pg_mblen(p);

	for (placeholders = false;; placeholders = true)
	{
		if (ks_find_oracle_statement(query, len, p - query,
									 standard_conforming_strings, placeholders,
									 node, hint, sizeof(hint)) == KS_ORACLE_NONE)
			return;
		if (pg_verifymbstr(hint, strlen(hint), true))
		{
			edata->hint = pstrdup(hint);
			return;
		}
		if (placeholders)
			return;
	}
}
