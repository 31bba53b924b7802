/*-------------------------------------------------------------------------
 *
 * sql_scan.c
 *		A small SQL scanner for the Oracle statements PostgreSQL rejects.
 *
 * It follows the rules of PostgreSQL's lexer (scan.l) for what can stand
 * between and inside tokens: white space, -- and nested slash-star
 * comments, quoted identifiers, string constants in every form (standard,
 * E'' escapes, either standard_conforming_strings, continuation over a
 * newline, dollar quoting), so that a quote or a semicolon inside any of
 * them is never taken for the end of a string or a statement.  It reads a
 * string constant's value as the lexer does, for the one use it has: the
 * session string of ALTER SYSTEM KILL SESSION, which is then parsed as
 * kill_session() parses it.  The HINT is built from the parsed numbers,
 * never from the user's text; a name is written from its value, quoted as
 * needed, and a password never at all.
 *
 * A leaf, pure C: it calls nothing of the project but session_id.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  sql_scan.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_id.h"
#include "sql_scan.h"

/* A byte that no session string may hold: marks what cannot be one. */
#define KS_NOT_SESSION_CHAR	'\001'

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
		c == '\v';
}

static bool
is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		(unsigned char) c >= 0x80;
}

static bool
is_ident_cont(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void
ks_scan_init(KsScanner *scanner, const char *query, size_t len,
			 bool std_strings)
{
	scanner->query = query;
	scanner->len = len;
	scanner->pos = 0;
	scanner->std_strings = std_strings;
}

bool
ks_scan_init_statement(KsScanner *scanner, const char *query, int location,
					   int len, bool std_strings)
{
	if (query == NULL)
		return false;
	if (location > 0)
		query += location;
	ks_scan_init(scanner, query, len > 0 ? (size_t) len : strlen(query),
				 std_strings);
	return true;
}

static char
peek(const KsScanner *s, size_t ahead)
{
	return s->pos + ahead < s->len ? s->query[s->pos + ahead] : '\0';
}

static bool
at_end(const KsScanner *s)
{
	return s->pos >= s->len;
}

/* Skip a -- comment up to, not including, its newline. */
static void
skip_line_comment(KsScanner *s)
{
	while (!at_end(s) && peek(s, 0) != '\n' && peek(s, 0) != '\r')
		s->pos++;
}

/*
 * Skip white space and comments.  Returns false on an unterminated
 * slash-star comment.
 */
static bool
skip_space(KsScanner *s)
{
	while (!at_end(s))
	{
		char		c = peek(s, 0);

		if (is_space(c))
			s->pos++;
		else if (c == '-' && peek(s, 1) == '-')
			skip_line_comment(s);
		else if (c == '/' && peek(s, 1) == '*')
		{
			int			depth = 1;

			s->pos += 2;
			while (depth > 0)
			{
				if (at_end(s))
					return false;
				if (peek(s, 0) == '/' && peek(s, 1) == '*')
				{
					depth++;
					s->pos += 2;
				}
				else if (peek(s, 0) == '*' && peek(s, 1) == '/')
				{
					depth--;
					s->pos += 2;
				}
				else
					s->pos++;
			}
		}
		else
			break;
	}
	return true;
}

/*
 * After a closing quote: white space holding a newline, then a quote,
 * continues the same string constant (SQL's rule).  If so, step past that
 * quote and return true.
 */
static bool
string_continues(KsScanner *s)
{
	size_t		save = s->pos;
	bool		newline = false;

	/* Horizontal space and -- comments, then a newline ... */
	while (!at_end(s))
	{
		char		c = peek(s, 0);

		if (c == ' ' || c == '\t' || c == '\f')
			s->pos++;
		else if (c == '-' && peek(s, 1) == '-')
			skip_line_comment(s);
		else
			break;
	}
	if (!at_end(s) && (peek(s, 0) == '\n' || peek(s, 0) == '\r'))
	{
		newline = true;
		s->pos++;
		/* ... then any white space and -- comments. */
		while (!at_end(s))
		{
			if (is_space(peek(s, 0)))
				s->pos++;
			else if (peek(s, 0) == '-' && peek(s, 1) == '-')
				skip_line_comment(s);
			else
				break;
		}
	}
	if (newline && peek(s, 0) == '\'' && !at_end(s))
	{
		s->pos++;
		return true;
	}
	s->pos = save;
	return false;
}

static void
add_char(KsToken *t, char c)
{
	if (t->value_len < KS_SCAN_VALUE_MAX)
		t->value[t->value_len++] = c;
	else
		t->value_too_long = true;
}

/* A code point from a \u or \U escape: only ASCII can be in a session. */
static void
add_code_point(KsToken *t, unsigned long cp)
{
	add_char(t, (cp > 0 && cp < 0x80) ? (char) cp : KS_NOT_SESSION_CHAR);
}

/*
 * One backslash escape of an escape string, the backslash already read.
 * Returns false at the end of the input.
 */
static bool
read_escape(KsScanner *s, KsToken *t)
{
	char		c;

	if (at_end(s))
		return false;
	c = peek(s, 0);
	s->pos++;
	switch (c)
	{
		case 'b':
			add_char(t, '\b');
			break;
		case 'f':
			add_char(t, '\f');
			break;
		case 'n':
			add_char(t, '\n');
			break;
		case 'r':
			add_char(t, '\r');
			break;
		case 't':
			add_char(t, '\t');
			break;
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
			{
				int			v = c - '0';
				int			i;

				for (i = 0; i < 2 && peek(s, 0) >= '0' && peek(s, 0) <= '7' &&
					 !at_end(s); i++)
					v = v * 8 + (s->query[s->pos++] - '0');
				add_char(t, v == 0 ? KS_NOT_SESSION_CHAR : (char) (v & 0xFF));
			}
			break;
		case 'x':
			if (!at_end(s) && hex_value(peek(s, 0)) >= 0)
			{
				int			v = hex_value(s->query[s->pos++]);

				if (!at_end(s) && hex_value(peek(s, 0)) >= 0)
					v = v * 16 + hex_value(s->query[s->pos++]);
				add_char(t, v == 0 ? KS_NOT_SESSION_CHAR : (char) v);
			}
			else
				add_char(t, 'x');
			break;
		case 'u':
		case 'U':
			{
				int			digits = (c == 'u') ? 4 : 8;
				unsigned long cp = 0;
				int			i;

				for (i = 0; i < digits; i++)
				{
					if (at_end(s) || hex_value(peek(s, 0)) < 0)
						break;
					cp = cp * 16 + (unsigned long) hex_value(s->query[s->pos++]);
				}
				/* The lexer rejects a short escape: no session then. */
				add_code_point(t, i == digits ? cp : 0);
			}
			break;
		default:
			add_char(t, c);
			break;
	}
	return true;
}

/*
 * The body of a quoted string constant, the opening quote read.  escapes:
 * backslash escapes apply.  Returns false if it is not terminated.
 */
static bool
read_quoted(KsScanner *s, KsToken *t, bool escapes)
{
	for (;;)
	{
		char		c;

		if (at_end(s))
			return false;
		c = peek(s, 0);
		s->pos++;
		if (c == '\'')
		{
			if (peek(s, 0) == '\'' && !at_end(s))
			{
				s->pos++;
				add_char(t, '\'');
			}
			else if (!string_continues(s))
				return true;
		}
		else if (c == '\\' && escapes)
		{
			if (!read_escape(s, t))
				return false;
		}
		else
			add_char(t, c);
	}
}

/*
 * The body of a quoted identifier, the opening quote read; "" stands for a
 * quote.  Returns false if it is not terminated.
 */
static bool
read_quoted_ident(KsScanner *s, KsToken *t)
{
	for (;;)
	{
		char		c;

		if (at_end(s))
			return false;
		c = s->query[s->pos++];
		if (c == '"')
		{
			if (peek(s, 0) == '"' && !at_end(s))
				s->pos++;
			else
				return true;
		}
		add_char(t, c);
	}
}

/* $tag$...$tag$, at its first $; returns false if it is not one. */
static bool
read_dollar_quoted(KsScanner *s, KsToken *t, bool *terminated)
{
	size_t		tag_start = s->pos;
	size_t		tag_len;
	size_t		p = s->pos + 1;

	if (p < s->len && is_ident_start(s->query[p]))
	{
		p++;
		while (p < s->len && is_ident_cont(s->query[p]) && s->query[p] != '$')
			p++;
	}
	if (p >= s->len || s->query[p] != '$')
		return false;
	tag_len = p + 1 - tag_start;
	s->pos = p + 1;
	for (;;)
	{
		if (s->len - s->pos < tag_len)
		{
			s->pos = s->len;
			*terminated = false;
			return true;
		}
		if (memcmp(s->query + s->pos, s->query + tag_start, tag_len) == 0)
		{
			s->pos += tag_len;
			*terminated = true;
			return true;
		}
		add_char(t, s->query[s->pos++]);
	}
}

void
ks_scan_next(KsScanner *s, KsToken *t)
{
	char		c;
	char		c1;

	t->value_len = 0;
	t->value_too_long = false;
	t->value[0] = '\0';

	if (!skip_space(s))
	{
		t->type = KS_TOK_ERROR;
		t->start = t->end = s->pos;
		return;
	}
	t->start = s->pos;
	if (at_end(s))
	{
		t->type = KS_TOK_EOF;
		t->end = s->pos;
		return;
	}

	c = peek(s, 0);
	c1 = peek(s, 1);

	/* String constants with a prefix: E'', N'', B'', X'', U&'', U&"" */
	if ((c == 'e' || c == 'E') && c1 == '\'' && s->pos + 1 < s->len)
	{
		s->pos += 2;
		t->type = read_quoted(s, t, true) ? KS_TOK_STRING : KS_TOK_ERROR;
	}
	else if ((c == 'n' || c == 'N') && c1 == '\'' && s->pos + 1 < s->len)
	{
		s->pos += 2;
		t->type = read_quoted(s, t, !s->std_strings) ? KS_TOK_STRING : KS_TOK_ERROR;
	}
	else if ((c == 'b' || c == 'B' || c == 'x' || c == 'X') && c1 == '\'' &&
			 s->pos + 1 < s->len)
	{
		s->pos += 2;
		t->type = read_quoted(s, t, false) ? KS_TOK_OTHER_STRING : KS_TOK_ERROR;
	}
	else if ((c == 'u' || c == 'U') && c1 == '&' &&
			 (peek(s, 2) == '\'' || peek(s, 2) == '"') && s->pos + 2 < s->len)
	{
		bool		ident = peek(s, 2) == '"';

		s->pos += 3;
		if (ident)
			/* U&"..." escapes are not decoded: its value is not used */
			t->type = read_quoted_ident(s, t) ? KS_TOK_OTHER : KS_TOK_ERROR;
		else
			t->type = read_quoted(s, t, false) ? KS_TOK_OTHER_STRING : KS_TOK_ERROR;
	}
	else if (c == '\'')
	{
		s->pos++;
		t->type = read_quoted(s, t, !s->std_strings) ? KS_TOK_STRING : KS_TOK_ERROR;
	}
	else if (c == '"')
	{
		s->pos++;
		t->type = read_quoted_ident(s, t) ? KS_TOK_QUOTED_IDENT : KS_TOK_ERROR;
	}
	else if (c == '$')
	{
		bool		terminated;

		if (read_dollar_quoted(s, t, &terminated))
			t->type = terminated ? KS_TOK_STRING : KS_TOK_ERROR;
		else
		{
			s->pos++;
			t->type = KS_TOK_OTHER;
		}
	}
	else if (is_ident_start(c))
	{
		/* Its value as the lexer folds it: ASCII letters to lower case. */
		while (!at_end(s) && is_ident_cont(peek(s, 0)))
		{
			char		d = s->query[s->pos++];

			add_char(t, (d >= 'A' && d <= 'Z') ? d + ('a' - 'A') : d);
		}
		t->type = KS_TOK_WORD;
	}
	else if (c >= '0' && c <= '9')
	{
		/* An integer; digits run on into a number of another kind. */
		while (!at_end(s) && peek(s, 0) >= '0' && peek(s, 0) <= '9')
			add_char(t, s->query[s->pos++]);
		t->type = KS_TOK_NUMBER;
		if (!at_end(s) && (is_ident_cont(peek(s, 0)) || peek(s, 0) == '.'))
			t->type = KS_TOK_OTHER;
	}
	else if (c == ';')
	{
		s->pos++;
		t->type = KS_TOK_SEMICOLON;
	}
	else
	{
		s->pos++;
		t->type = KS_TOK_OTHER;
	}
	t->end = s->pos;
	t->value[t->value_len] = '\0';
}

bool
ks_token_is(const KsScanner *s, const KsToken *t, const char *word)
{
	size_t		len = strlen(word);
	size_t		i;

	if (t->type != KS_TOK_WORD || t->end - t->start != len)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = s->query[t->start + i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != word[i])
			return false;
	}
	return true;
}

/* The statement's first tokens kept for matching. */
#define KS_STMT_TOKENS	16

/* The HINT being written: an overflow means it could not be written whole. */
typedef struct KsHintOut
{
	char	   *buf;
	size_t		size;
	bool		overflow;
	int			node;			/* the server's node number, 0 if none */
} KsHintOut;

/* Append printf-style text; a HINT that does not fit is not cut short. */
static void
append(KsHintOut *out, const char *fmt, const char *a, const char *b,
	   const char *c)
{
	size_t		used = strlen(out->buf);
	int			n;

	if (out->overflow)
		return;
	n = snprintf(out->buf + used, out->size - used, fmt, a, b, c);
	if (n < 0 || (size_t) n >= out->size - used)
	{
		out->overflow = true;
		out->buf[used] = '\0';
	}
}

/*
 * The canonical session string of a string or integer token: "sid",
 * "sid, serial" or "sid, serial, @N", written from the parsed numbers.
 * false if kill_session() would reject it on a server of node node: not a
 * session string, or on a node of a cluster an ID that carries no node,
 * which could name a session of any node (*nodeless is then set to it).
 */
static bool
session_of(const KsToken *t, int node, char *out, size_t size,
		   long long *nodeless)
{
	KsSessionRef ref;

	*nodeless = 0;
	if (t->value_too_long ||
		ks_parse_session_id(t->value, t->value_len, &ref) != KS_SESSION_OK)
		return false;
	if (node != 0 && ref.node == 0 && ks_id_node(ref.id) == 0)
	{
		*nodeless = (long long) ref.id;
		return false;
	}
	if (ref.node != 0)
		snprintf(out, size, "%lld, %lu, @%d", (long long) ref.id,
				 (unsigned long) ref.serial, ref.node);
	else if (ref.has_serial)
		snprintf(out, size, "%lld, %lu", (long long) ref.id,
				 (unsigned long) ref.serial);
	else
		snprintf(out, size, "%lld", (long long) ref.id);
	return true;
}

/*
 * A name as SQL: as it is if plain lower case, else double-quoted; with
 * placeholders, <name>.  out holds 2 * KS_SCAN_VALUE_MAX + 3 bytes.
 */
static void
identifier_of(const KsToken *t, bool placeholders, char *out, size_t size)
{
	bool		plain = t->value_len > 0 &&
		!(t->value[0] >= '0' && t->value[0] <= '9') && t->value[0] != '$';
	size_t		i;
	size_t		o = 0;

	if (placeholders)
	{
		snprintf(out, size, "<name>");
		return;
	}
	for (i = 0; i < t->value_len && plain; i++)
	{
		char		c = t->value[i];

		plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
	}
	if (plain)
	{
		snprintf(out, size, "%s", t->value);
		return;
	}
	out[o++] = '"';
	for (i = 0; i < t->value_len && o + 3 < size; i++)
	{
		if (t->value[i] == '"')
			out[o++] = '"';
		out[o++] = t->value[i];
	}
	out[o++] = '"';
	out[o] = '\0';
}

static bool
is_name(const KsToken *t)
{
	return (t->type == KS_TOK_WORD || t->type == KS_TOK_QUOTED_IDENT) &&
		!t->value_too_long && t->value_len > 0 &&
		memchr(t->value, '\0', t->value_len) == NULL;
}

/* Whether t is the one character c. */
static bool
is_char(const KsScanner *s, const KsToken *t, char c)
{
	return t->type == KS_TOK_OTHER && t->end == t->start + 1 &&
		s->query[t->start] == c;
}

#define IS(i, word) ks_token_is(&s, &tok[i], word)

/* What to say when the session string is not one. */
#define KS_INVALID_SESSION \
	"; the session string given is not valid: it must be 'session_id', " \
	"'session_id, serial#' or 'session_id, serial#, @node', with numbers " \
	"from SHOW PROCESSLIST."

/*
 * What is wrong with a session string: not one, or on a node of a cluster
 * an ID without its node.  For the latter, the form this node takes for a
 * session of its own of that number, and no call.
 */
static void
invalid_session(KsHintOut *out, const char *function, long long nodeless)
{
	char		why[200];

	if (nodeless == 0)
	{
		append(out, "SELECT %s('session_id')%s", function, KS_INVALID_SESSION, "");
		return;
	}
	snprintf(why, sizeof(why),
			 "; the session ID %lld carries no node, so it could be any node's: "
			 "give it as SHOW PROCESSLIST lists it (on this node, node %d, "
			 "session %lld is %lld).",
			 nodeless, out->node, nodeless,
			 (long long) out->node * KS_NODE_FACTOR + nodeless);
	append(out, "SELECT %s('session_id')%s", function, why, "");
}

/* Longest Oracle TIMEOUT, in seconds, a drain deadline takes. */
#define KS_MAX_TIMEOUT_S	2147483UL

/*
 * The clauses Oracle 23ai allows after the session string, for KILL and
 * DISCONNECT SESSION:
 *		[POST_TRANSACTION] [IMMEDIATE | FORCE | NOREPLAY] [TIMEOUT n]
 */
typedef struct KsEndClauses
{
	bool		post_transaction;
	bool		immediate;
	bool		force;
	bool		noreplay;
	bool		has_timeout;
	unsigned long timeout_s;
}			KsEndClauses;

/*
 * Read the clauses of tok[first..n); false if they are not of that shape.
 * POST_TRANSACTION only if allowed.  With it, Oracle ignores IMMEDIATE
 * for a session that has a transaction, and disconnect_session() ends one
 * that has none at once, so POST_TRANSACTION decides.
 */
static bool
end_clauses(const KsScanner *sc, const KsToken *tok, int first, int n,
			bool post_transaction_allowed, KsEndClauses * c)
{
	int			i = first;
	const KsScanner s = *sc;

	memset(c, 0, sizeof(*c));
	if (i < n && post_transaction_allowed && IS(i, "post_transaction"))
	{
		c->post_transaction = true;
		i++;
	}
	if (i < n && IS(i, "immediate"))
		c->immediate = true;
	else if (i < n && IS(i, "force"))
		c->force = true;
	else if (i < n && IS(i, "noreplay"))
		c->noreplay = true;
	if (c->immediate || c->force || c->noreplay)
		i++;
	if (i + 1 < n && IS(i, "timeout") && tok[i + 1].type == KS_TOK_NUMBER &&
		!tok[i + 1].value_too_long)
	{
		char	   *end;

		c->timeout_s = strtoul(tok[i + 1].value, &end, 10);
		if (tok[i + 1].value_len > 7 || c->timeout_s > KS_MAX_TIMEOUT_S)
			return false;
		c->has_timeout = true;
		i += 2;
	}
	return i == n;
}

/*
 * The HINT for ALTER SYSTEM KILL SESSION, DISCONNECT SESSION and CANCEL
 * SQL: the call, followed by what of Oracle's clauses has no equivalent
 * here.  Oracle 23ai's TIMEOUT n is a drain: the session has n seconds to
 * end its transaction, then it is killed; that is disconnect_session()
 * with post_transaction and timeout.  IMMEDIATE, and TIMEOUT 0, end it
 * now; FORCE changes neither (PostgreSQL's kill never waits for the
 * session's work).
 */
static KsOracleResult
session_statement_hint(const char *function, const KsToken *session_token,
					   const KsEndClauses * c, KsHintOut *out)
{
	char		session[32];
	char		option[64] = "";
	long long	nodeless;
	bool		drain = c->has_timeout && c->timeout_s > 0 && !c->immediate;

	if (!session_of(session_token, out->node, session, sizeof(session),
					&nodeless))
	{
		invalid_session(out, function, nodeless);
		return KS_ORACLE_INVALID;
	}
	if (drain)
	{
		function = "disconnect_session";
		snprintf(option, sizeof(option),
				 ", post_transaction => true, timeout => '%lus'", c->timeout_s);
	}
	else if (c->post_transaction && !c->has_timeout)
		snprintf(option, sizeof(option), ", post_transaction => true");
	else if (c->immediate || c->force || c->has_timeout)
		snprintf(option, sizeof(option), ", immediate => true");
	append(out, "SELECT %s('%s'%s);", function, session, option);
	if (c->force)
		append(out, " FORCE is not needed: PostgreSQL rolls back a killed session's work at once.%s%s%s",
			   "", "", "");
	if (c->noreplay)
		append(out, " NOREPLAY is not needed: PostgreSQL never replays the work of an ended session.%s%s%s",
			   "", "", "");
	if (c->immediate && c->has_timeout && c->timeout_s > 0)
		append(out, " TIMEOUT is ignored with IMMEDIATE: the session ends now.%s%s%s",
			   "", "", "");
	return KS_ORACLE_VALID;
}

/*
 * The HINT for ALTER SYSTEM CANCEL SQL 'sid, serial#[, @N][, sql_id]':
 * Oracle 18c's SQL_ID part goes into the call as it is, a query ID; one
 * that is no query ID gets a placeholder and a note.
 */
static KsOracleResult
cancel_sql_hint(const KsToken *t, KsHintOut *out)
{
	static const KsEndClauses none;
	KsToken		session_token;
	size_t		session_len;
	int64_t		sql_id;
	char		session[32];
	char		sql[24];
	long long	nodeless;
	KsSqlIdParse p;

	p = t->value_too_long ? KS_SQL_ID_NONE :
		ks_split_sql_id(t->value, t->value_len, &session_len, &sql_id);
	if (p == KS_SQL_ID_NONE)
		return session_statement_hint("cancel_sql", t, &none, out);
	session_token = *t;
	session_token.value_len = session_len;
	if (!session_of(&session_token, out->node, session, sizeof(session),
					&nodeless))
	{
		invalid_session(out, "cancel_sql", nodeless);
		return KS_ORACLE_INVALID;
	}
	if (p == KS_SQL_ID_INVALID)
	{
		append(out, "SELECT cancel_sql('%s, sql_id')%s%s", session,
			   "; the SQL_ID given is not valid: it must be a query ID as "
			   "v$session shows it (a 64-bit integer).", "");
		return KS_ORACLE_INVALID;
	}
	snprintf(sql, sizeof(sql), "%lld", (long long) sql_id);
	append(out, "SELECT cancel_sql('%s, %s');%s", session, sql, "");
	return KS_ORACLE_VALID;
}

static KsOracleResult
find_oracle_statement(const char *query, size_t len, size_t errpos,
					  bool std_strings, bool placeholders, KsHintOut *out)
{
	KsScanner	s;
	KsToken		tok[KS_STMT_TOKENS];
	KsToken		t;
	int			n = 0;
	bool		has_error_token = false;
	char		session[32];
	long long	nodeless;
	const char *function;
	KsEndClauses clauses;

	ks_scan_init(&s, query, len, std_strings);
	for (;;)
	{
		ks_scan_next(&s, &t);
		if (t.type == KS_TOK_ERROR)
			return KS_ORACLE_NONE;
		if (t.type == KS_TOK_SEMICOLON || t.type == KS_TOK_EOF)
		{
			if (has_error_token)
				break;
			if (t.type == KS_TOK_EOF)
				return KS_ORACLE_NONE;
			n = 0;
			continue;
		}
		if (t.start == errpos)
			has_error_token = true;
		if (n < KS_STMT_TOKENS)
			tok[n] = t;
		n++;
	}
	if (n > KS_STMT_TOKENS)
		return KS_ORACLE_NONE;
	append(out, "On PostgreSQL run: %s%s%s", "", "", "");

	/*
	 * CREATE USER name IDENTIFIED BY password, and Oracle's password change
	 * ALTER USER name IDENTIFIED BY password, the error at IDENTIFIED.  The
	 * password is never written: not into the HINT, so not into the log.
	 */
	if (n == 6 && (IS(0, "create") || IS(0, "alter")) && IS(1, "user") &&
		is_name(&tok[2]) && IS(3, "identified") && tok[3].start == errpos &&
		IS(4, "by") && (is_name(&tok[5]) || tok[5].type == KS_TOK_STRING))
	{
		char		name[2 * KS_SCAN_VALUE_MAX + 3];

		identifier_of(&tok[2], placeholders, name, sizeof(name));
		append(out, "%s USER %s PASSWORD '<password>';",
			   IS(0, "create") ? "CREATE" : "ALTER", name, "");
		return KS_ORACLE_VALID;
	}

	/* GRANT CREATE SESSION TO name [, ...], the error at SESSION */
	if (n >= 5 && n % 2 == 1 && IS(0, "grant") && IS(1, "create") &&
		IS(2, "session") && tok[2].start == errpos && IS(3, "to"))
	{
		int			i;
		char		name[2 * KS_SCAN_VALUE_MAX + 3];

		for (i = 4; i < n; i += 2)
		{
			if (!is_name(&tok[i]) || (i + 1 < n && !is_char(&s, &tok[i + 1], ',')))
				return KS_ORACLE_NONE;
		}
		for (i = 4; i < n; i += 2)
		{
			identifier_of(&tok[i], placeholders, name, sizeof(name));
			append(out, "%sALTER ROLE %s LOGIN;%s", i > 4 ? " " : "", name, "");
		}
		return KS_ORACLE_VALID;
	}

	/*
	 * SHOW FULL PROCESSLIST (MySQL, OceanBase), the error at FULL, a reserved
	 * word here
	 */
	if (n == 3 && IS(0, "show") && IS(1, "full") && IS(2, "processlist") &&
		(tok[1].start == errpos || tok[2].start == errpos))
	{
		append(out, "SHOW PROCESSLIST; it always shows the full statement text (up to track_activity_query_size).%s%s%s",
			   "", "", "");
		return KS_ORACLE_VALID;
	}

	/* KILL [CONNECTION | QUERY] id, the error at KILL */
	if (n >= 2 && n <= 3 && IS(0, "kill") && tok[0].start == errpos &&
		tok[n - 1].type == KS_TOK_NUMBER &&
		(n == 2 || IS(1, "connection") || IS(1, "query")))
	{
		function = (n == 3 && IS(1, "query")) ? "cancel_sql" : "kill_session";
		if (!session_of(&tok[n - 1], out->node, session, sizeof(session),
						&nodeless))
		{
			invalid_session(out, function, nodeless);
			return KS_ORACLE_INVALID;
		}
		append(out, "SELECT %s('%s');%s", function, session, "");
		return KS_ORACLE_VALID;
	}

	/*----------
	 * ALTER SYSTEM KILL SESSION 'session' [IMMEDIATE | FORCE | NOREPLAY]
	 *		[TIMEOUT n]
	 * ALTER SYSTEM DISCONNECT SESSION 'session' [POST_TRANSACTION]
	 *		[IMMEDIATE | FORCE | NOREPLAY] [TIMEOUT n]
	 * ALTER SYSTEM CANCEL SQL 'session[, sql_id]'
	 * the error at the word after SYSTEM
	 *----------
	 */
	if (n < 5 || !IS(0, "alter") || !IS(1, "system") || tok[2].start != errpos ||
		tok[4].type != KS_TOK_STRING)
		return KS_ORACLE_NONE;
	if (IS(2, "kill") && IS(3, "session") &&
		end_clauses(&s, tok, 5, n, false, &clauses))
		function = "kill_session";
	else if (IS(2, "disconnect") && IS(3, "session") &&
			 end_clauses(&s, tok, 5, n, true, &clauses))
		function = "disconnect_session";
	else if (IS(2, "cancel") && IS(3, "sql") && n == 5)
		return cancel_sql_hint(&tok[4], out);
	else
		return KS_ORACLE_NONE;
	return session_statement_hint(function, &tok[4], &clauses, out);
}

KsOracleResult
ks_find_oracle_statement(const char *query, size_t len, size_t errpos,
						 bool std_strings, bool placeholders, int node,
						 char *hint, size_t hintsize)
{
	KsHintOut	out = {hint, hintsize, false, node};
	KsOracleResult result;

	if (hintsize == 0)
		return KS_ORACLE_NONE;
	hint[0] = '\0';
	result = find_oracle_statement(query, len, errpos, std_strings,
								   placeholders, &out);
	if (result != KS_ORACLE_NONE && out.overflow && !placeholders)
		return ks_find_oracle_statement(query, len, errpos, std_strings, true,
										node, hint, hintsize);
	if (result == KS_ORACLE_NONE || out.overflow)
	{
		hint[0] = '\0';
		return KS_ORACLE_NONE;
	}
	return result;
}
