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
 * at every token in turn, with and without placeholders, a HINT is only
 * ever one of its canonical forms, written whole:
 *	- a call matched by a regular expression, whose numbers parse back as a
 *	  session string, after an optional SET of the wait and before fixed
 *	  notes on Oracle's clauses;
 *	- a CREATE or ALTER USER or an ALTER ROLE whose names scan back as
 *	  exactly one name each, so nothing the user typed can become SQL of
 *	  its own, and whose password is always the placeholder '<password>',
 *	  so no byte of the user's password is ever written;
 *	- SHOW PROCESSLIST with its note.
 * A HINT is valid UTF-8 whenever the query is, and plain ASCII with
 * placeholders.  Any violation aborts.
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

/* The notes a HINT may end with, after its statement. */
static const char *const notes[] = {
	" FORCE is not needed: PostgreSQL rolls back a killed session's work at once.",
	" NOREPLAY is not needed: PostgreSQL never replays the work of an ended session.",
	" TIMEOUT is ignored with IMMEDIATE: the session ends now.",
};

#define SHOW_HINT "SHOW PROCESSLIST; it always shows the full statement text (up to track_activity_query_size)."

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (regcomp(&call_shape,
				"^SELECT (kill_session|disconnect_session|cancel_sql)\\('([0-9]+)(, ([0-9]+))?(, @([0-9]+))?(, (-?[0-9]+))?'"
				"(, (immediate|post_transaction) => true)?(, timeout => '[1-9][0-9]*s')?\\);$",
				REG_EXTENDED) != 0)
		abort();
	return 0;
}

static void
fail(const char *what, const char *hint)
{
	fprintf(stderr, "%s: %s\n", what, hint);
	abort();
}

/* The node number of the server the HINT is written for. */
static int	server_node;

/*
 * The call's session string parses, to numbers printed without zeros; on
 * a node of a cluster its ID carries a node.
 */
static void
check_call(const char *call, const char *hint)
{
	regmatch_t	m[11];
	const char *open;
	const char *close;
	KsSessionRef ref;
	size_t		session_len;
	int64_t		sql_id;
	KsSqlIdParse sql;

	if (regexec(&call_shape, call, 11, m, 0) != 0)
		fail("not a canonical call", hint);
	/* A drain deadline only on disconnect_session's post_transaction. */
	if (strstr(call, ", timeout => ") != NULL &&
		(strncmp(call, "SELECT disconnect_session(", 26) != 0 ||
		 strstr(call, ", post_transaction => true, timeout => ") == NULL))
		fail("a timeout on another call than the drain", hint);
	open = strchr(call, '\'');
	close = strchr(open + 1, '\'');
	/* A SQL_ID only in cancel_sql's, a query ID printed without zeros. */
	sql = ks_split_sql_id(open + 1, close - open - 1, &session_len, &sql_id);
	if ((m[7].rm_so >= 0) != (sql == KS_SQL_ID_OK) ||
		(sql == KS_SQL_ID_OK && strncmp(call, "SELECT cancel_sql(", 18) != 0) ||
		(sql == KS_SQL_ID_OK &&
		 (call[m[8].rm_so + (call[m[8].rm_so] == '-')] == '0') &&
		 m[8].rm_eo - m[8].rm_so > 1))
		fail("call with a SQL_ID that does not round-trip", hint);
	if (ks_parse_session_id(open + 1, session_len, &ref) != KS_SESSION_OK ||
		call[m[2].rm_so] == '0' ||
		(ref.has_serial && call[m[4].rm_so] == '0' && m[4].rm_eo - m[4].rm_so > 1) ||
		(ref.node != 0 && call[m[6].rm_so] == '0'))
		fail("call does not round-trip", hint);
	if (server_node != 0 && ks_id_node(ks_ref_id(&ref)) == 0)
		fail("call on a node with an ID that carries no node", hint);
}

/* The next token of a HINT's statement is of type, or the word. */
static void
expect(KsScanner *s, KsTokenType type, const char *word, const char *hint)
{
	KsToken		t;

	ks_scan_next(s, &t);
	if (t.type != type || (word != NULL && !ks_token_is(s, &t, word)))
		fail("HINT does not scan as its form", hint);
}

/* A name, or with placeholders exactly <name>. */
static void
expect_name(KsScanner *s, bool placeholders, const char *hint)
{
	KsToken		t;

	if (placeholders)
	{
		if (strncmp(s->query + s->pos, " <name>", 7) != 0)
			fail("HINT without its placeholder name", hint);
		s->pos += 7;
		return;
	}
	ks_scan_next(s, &t);
	if (t.type != KS_TOK_WORD && t.type != KS_TOK_QUOTED_IDENT)
		fail("HINT has no name where one belongs", hint);
}

/* Whether s[0..len) is valid UTF-8 (shortest forms, no surrogates). */
static bool
valid_utf8(const unsigned char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t		n;
		uint32_t	cp;
		size_t		k;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (k = 1; k <= n; k++)
		{
			if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
			(n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
		i += n + 1;
	}
	return true;
}

/* A HINT's statement scans back as its form, under either string rule. */
static void
check_hint(const char *hint, bool placeholders)
{
	const char *prefix = "On PostgreSQL run: ";
	char		sql[KS_HINT_MAX];
	size_t		len;
	int			rule;
	size_t		i;

	if (strncmp(hint, prefix, strlen(prefix)) != 0)
		fail("HINT without its prefix", hint);
	snprintf(sql, sizeof(sql), "%s", hint + strlen(prefix));
	if (strcmp(sql, SHOW_HINT) == 0)
		return;
	if (strncmp(sql, "SELECT ", 7) == 0)
	{
		const char *call = sql;

		/* The notes, each at most once, in their order. */
		for (i = sizeof(notes) / sizeof(notes[0]); i-- > 0;)
		{
			len = strlen(sql);
			if (len > strlen(notes[i]) &&
				strcmp(sql + len - strlen(notes[i]), notes[i]) == 0)
				sql[len - strlen(notes[i])] = '\0';
		}
		check_call(call, hint);
		return;
	}
	for (rule = 0; rule < 2; rule++)
	{
		KsScanner	s;

		ks_scan_init(&s, sql, strlen(sql), rule == 0);
		if (strncmp(sql, "CREATE USER ", 12) == 0 ||
			strncmp(sql, "ALTER USER ", 11) == 0)
		{
			KsToken		t;

			ks_scan_next(&s, &t);
			if (!ks_token_is(&s, &t, "create") && !ks_token_is(&s, &t, "alter"))
				fail("HINT does not scan as its form", hint);
			expect(&s, KS_TOK_WORD, "user", hint);
			expect_name(&s, placeholders, hint);
			expect(&s, KS_TOK_WORD, "password", hint);
			ks_scan_next(&s, &t);
			if (t.type != KS_TOK_STRING || strcmp(t.value, "<password>") != 0)
				fail("HINT carries something else than the password placeholder", hint);
			expect(&s, KS_TOK_SEMICOLON, NULL, hint);
		}
		else
		{
			do
			{
				expect(&s, KS_TOK_WORD, "alter", hint);
				expect(&s, KS_TOK_WORD, "role", hint);
				expect_name(&s, placeholders, hint);
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
	int			node;
	int			i;

	if (size < 1)
		return 0;
	std_strings = (data[0] & 1) == 0;
	/* A single server, or node 1 or 9999 of a cluster. */
	node = (data[0] & 6) == 0 ? 0 : (data[0] & 6) == 2 ? 1 : 9999;
	server_node = node;
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
		char		hint[KS_HINT_MAX];
		int			placeholders;

		for (placeholders = 0; placeholders < 2; placeholders++)
		{
			KsOracleResult result;
			size_t		j;

			result = ks_find_oracle_statement(query, len, starts[i],
											  std_strings, placeholders, node,
											  hint, sizeof(hint));
			if (result == KS_ORACLE_VALID)
				check_hint(hint, placeholders);
			if (result != KS_ORACLE_NONE && valid_utf8((const unsigned char *) query, len) &&
				!valid_utf8((const unsigned char *) hint, strlen(hint)))
				fail("HINT is not valid UTF-8 though the query is", hint);
			for (j = 0; placeholders && hint[j]; j++)
				if ((unsigned char) hint[j] >= 0x80)
					fail("HINT with placeholders is not ASCII", hint);
		}
	}
	free((char *) query);
	return 0;
}
