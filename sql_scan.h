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
	KS_TOK_QUOTED_IDENT,		/* "..." */
	KS_TOK_NUMBER,				/* an integer */
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

	/*
	 * The value as the lexer reads it: of a string, a quoted identifier, an
	 * integer, or a word (folded to lower case)
	 */
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

/*
 * Scan the statement at byte location of query, len bytes long (0: to the
 * end), as a server's statement location and length give it.  false if
 * there is no query.
 */
extern bool ks_scan_init_statement(KsScanner *scanner, const char *query,
								   int location, int len, bool std_strings);

/* The next token, skipping white space and comments. */
extern void ks_scan_next(KsScanner *scanner, KsToken *token);

/* Whether a KS_TOK_WORD token is the keyword word (lower case). */
extern bool ks_token_is(const KsScanner *scanner, const KsToken *token,
						const char *word);

typedef enum KsOracleResult
{
	KS_ORACLE_NONE,				/* not one of the statements below */
	KS_ORACLE_VALID,			/* one of them: hint holds its PostgreSQL form */
	KS_ORACLE_INVALID			/* one of them with a session string that
								 * would be rejected: hint says so */
} KsOracleResult;

/* Room for any HINT ks_find_oracle_statement() writes whole. */
#define KS_HINT_MAX	2048

/*
 * If the statement of query that has a token starting at byte errpos (where
 * the server reported its syntax error) is one of the Oracle or MySQL
 * statements PostgreSQL rejects there, write the HINT that gives its
 * PostgreSQL form into hint (hintsize bytes):
 *
 *	ALTER SYSTEM KILL SESSION 's' [IMMEDIATE | FORCE | NOREPLAY] [TIMEOUT n]
 *	ALTER SYSTEM DISCONNECT SESSION 's' [POST_TRANSACTION]
 *		[IMMEDIATE | FORCE | NOREPLAY] [TIMEOUT n]
 *	ALTER SYSTEM CANCEL SQL 's'
 *	KILL [CONNECTION | QUERY] id
 *	SHOW FULL PROCESSLIST
 *	CREATE USER name IDENTIFIED BY password
 *	ALTER USER name IDENTIFIED BY password
 *	GRANT CREATE SESSION TO name [, ...]
 *
 * Session strings and IDs are written from the parsed numbers, names from
 * their values as the lexer reads them (or as <name> with placeholders);
 * a password is always written as '<password>'.  node is the server's
 * kill_session.node_id: on a node of a cluster (not 0), a session ID that
 * carries no node is said to be wrong, as kill_session() would say.  Nothing is copied from
 * the query's text.  A HINT is written whole or not at all: one that
 * would not fit is written with placeholders, and if that does not fit
 * either, there is none.
 */
extern KsOracleResult ks_find_oracle_statement(const char *query, size_t len,
											   size_t errpos, bool std_strings,
											   bool placeholders, int node,
											   char *hint, size_t hintsize);

#endif							/* KS_SQL_SCAN_H */
