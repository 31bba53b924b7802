/*-------------------------------------------------------------------------
 *
 * sql_scan.h
 *		A small SQL scanner for the Oracle statements PostgreSQL rejects:
 *		finds ALTER SYSTEM KILL SESSION '...' [IMMEDIATE] in a query string
 *		and reads its session string as PostgreSQL's lexer would.
 *
 * Pure C with no PostgreSQL dependency, so that a fuzzer can link it
 * without the server: it runs on every syntax error of every client.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  sql_scan.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SQL_SCAN_H
#define KS_SQL_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest string constant value kept; a longer one is not a session. */
#define KS_SCAN_VALUE_MAX	64

typedef enum KsTokenType
{
	KS_TOK_EOF,
	KS_TOK_WORD,				/* unquoted identifier or keyword */
	KS_TOK_QUOTED_IDENT,		/* "..." or U&"..." */
	KS_TOK_STRING,				/* '...', E'...', N'...', $tag$...$tag$ */
	KS_TOK_OTHER_STRING,		/* B'...', X'...', U&'...': not a session */
	KS_TOK_SEMICOLON,
	KS_TOK_OTHER,				/* anything else, one character */
	KS_TOK_ERROR				/* unterminated string, identifier or comment */
} KsTokenType;

typedef struct KsToken
{
	KsTokenType type;
	size_t		start;			/* byte offset in the query */
	size_t		end;			/* byte offset just past it */
	/* KS_TOK_STRING: the value, as the lexer reads it */
	char		value[KS_SCAN_VALUE_MAX + 1];
	size_t		value_len;
	bool		value_too_long;
} KsToken;

typedef struct KsScanner
{
	const char *query;
	size_t		len;
	size_t		pos;
	bool		std_strings;	/* standard_conforming_strings */
} KsScanner;

extern void ks_scan_init(KsScanner *scanner, const char *query, size_t len,
						 bool std_strings);

/* The next token, skipping white space and comments. */
extern void ks_scan_next(KsScanner *scanner, KsToken *token);

/* Whether a KS_TOK_WORD token is the keyword word (lower case). */
extern bool ks_token_is(const KsScanner *scanner, const KsToken *token,
						const char *word);

typedef enum KsKillStatement
{
	KS_KILL_NONE,				/* not ALTER SYSTEM KILL SESSION '...' */
	KS_KILL_VALID,				/* with a valid session string */
	KS_KILL_INVALID				/* with a session string kill_session() would
								 * reject */
} KsKillStatement;

/*
 * If the statement of query that has a token starting at byte errpos (where
 * the server reported its syntax error) is ALTER SYSTEM KILL SESSION
 * 'session' [IMMEDIATE] [;], and errpos is its KILL, say so; for a valid
 * session string, write the equivalent call, built from the parsed numbers
 * (never from the user's text), into call (callsize bytes):
 * SELECT kill_session('123, 4', immediate => true);
 */
extern KsKillStatement ks_find_kill_statement(const char *query, size_t len,
											  size_t errpos, bool std_strings,
											  char *call, size_t callsize);

#endif							/* KS_SQL_SCAN_H */
