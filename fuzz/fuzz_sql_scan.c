/*-------------------------------------------------------------------------
 *
 * fuzz_sql_scan.c
 *		libFuzzer harness for the SQL scanner behind the Oracle HINT.
 *
 * The scanner runs on every syntax error of every client, inside the
 * server's error reporting.  The first input byte sets
 * standard_conforming_strings (its lowest bit: 0 = on); the rest is the
 * query.  Under AddressSanitizer and UndefinedBehaviorSanitizer it checks:
 * tokens move forward and stay inside the query; and with the error placed
 * at every token in turn, a HINT is only ever one of its canonical forms:
 * a call matched by a regular expression, whose numbers parse back as a
 * session string, or a CREATE USER or ALTER ROLE whose names and password
 * scan back as exactly one name and one string constant each -- so nothing
 * the user typed can become SQL of its own.  Any violation aborts.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  fuzz/fuzz_sql_scan.c
 *
 *-------------------------------------------------------------------------
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_id.h"
#include "sql_scan.h"

static regex_t call_shape;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (regcomp(&call_shape,
				"^SELECT (kill_session|disconnect_session|cancel_sql)\\('([0-9]+)(, ([0-9]+))?'"
				"(, (immediate|post_transaction) => true)?\\);$",
				REG_EXTENDED) != 0)
		abort();
	return 0;
}

/* The call's session string parses, to numbers printed without zeros. */
static void
check_call(const char *call)
{
	regmatch_t	m[7];
	const char *open;
	const char *close;
	uint32_t	sid,
				serial;
	bool		has_serial;

	if (regexec(&call_shape, call, 7, m, 0) != 0)
	{
		fprintf(stderr, "not a canonical call: %s\n", call);
		abort();
	}
	open = strchr(call, '\'');
	close = strchr(open + 1, '\'');
	if (!ks_parse_session_id(open + 1, close - open - 1, &sid, &serial, &has_serial) ||
		call[m[2].rm_so] == '0' ||
		(has_serial && call[m[4].rm_so] == '0' && m[4].rm_eo - m[4].rm_so > 1))
	{
		fprintf(stderr, "call does not round-trip: %s\n", call);
		abort();
	}
}

/* The next token of a HINT's statement is of type, or the word. */
static void
expect(KsScanner *s, KsTokenType type, const char *word, const char *hint)
{
	KsToken		t;

	ks_scan_next(s, &t);
	if (t.type != type || (word != NULL && !ks_token_is(s, &t, word)))
	{
		fprintf(stderr, "HINT does not scan as its form: %s\n", hint);
		abort();
	}
}

static void
expect_name(KsScanner *s, const char *hint)
{
	KsToken		t;

	ks_scan_next(s, &t);
	if (t.type != KS_TOK_WORD && t.type != KS_TOK_QUOTED_IDENT)
	{
		fprintf(stderr, "HINT has no name where one belongs: %s\n", hint);
		abort();
	}
}

/* A HINT's statement scans back as its form, under either string rule. */
static void
check_hint(const char *hint)
{
	const char *prefix = "On PostgreSQL run: ";
	const char *sql;
	int			rule;

	if (strncmp(hint, prefix, strlen(prefix)) != 0)
	{
		fprintf(stderr, "HINT without its prefix: %s\n", hint);
		abort();
	}
	sql = hint + strlen(prefix);
	if (strncmp(sql, "SELECT ", 7) == 0)
	{
		check_call(sql);
		return;
	}
	for (rule = 0; rule < 2; rule++)
	{
		KsScanner	s;

		ks_scan_init(&s, sql, strlen(sql), rule == 0);
		if (strncmp(sql, "CREATE USER ", 12) == 0)
		{
			expect(&s, KS_TOK_WORD, "create", hint);
			expect(&s, KS_TOK_WORD, "user", hint);
			expect_name(&s, hint);
			expect(&s, KS_TOK_WORD, "password", hint);
			expect(&s, KS_TOK_STRING, NULL, hint);
			expect(&s, KS_TOK_SEMICOLON, NULL, hint);
		}
		else
		{
			do
			{
				expect(&s, KS_TOK_WORD, "alter", hint);
				expect(&s, KS_TOK_WORD, "role", hint);
				expect_name(&s, hint);
				expect(&s, KS_TOK_WORD, "login", hint);
				expect(&s, KS_TOK_SEMICOLON, NULL, hint);
			} while (s.pos < s.len);
		}
		expect(&s, KS_TOK_EOF, NULL, hint);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	KsScanner	s;
	KsToken		t;
	size_t		starts[256];
	int			nstarts = 0;
	size_t		last_end = 0;
	const char *query;
	size_t		len;
	bool		std_strings;
	int			i;

	if (size < 1)
		return 0;
	std_strings = (data[0] & 1) == 0;
	len = size - 1;
	/* An exact-size copy, so that ASan sees any read past the end. */
	query = malloc(len ? len : 1);
	memcpy((char *) query, data + 1, len);

	ks_scan_init(&s, query, len, std_strings);
	for (;;)
	{
		ks_scan_next(&s, &t);
		if (t.start < last_end || t.end < t.start || t.end > len ||
			(t.type != KS_TOK_EOF && t.type != KS_TOK_ERROR && t.end == t.start) ||
			t.value_len > KS_SCAN_VALUE_MAX)
		{
			fprintf(stderr, "token out of order or bounds\n");
			abort();
		}
		if (t.type == KS_TOK_EOF || t.type == KS_TOK_ERROR)
			break;
		last_end = t.end;
		if (nstarts < 256)
			starts[nstarts++] = t.start;
	}

	for (i = 0; i < nstarts; i++)
	{
		char		hint[512];

		if (ks_find_oracle_statement(query, len, starts[i], std_strings,
									 hint, sizeof(hint)) == KS_ORACLE_VALID)
			check_hint(hint);
	}
	free((char *) query);
	return 0;
}
