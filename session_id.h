/*-------------------------------------------------------------------------
 *
 * session_id.h
 *		Parser of the session string of ALTER SYSTEM KILL SESSION.
 *
 * Pure C with no PostgreSQL dependency, so that a fuzzer can link it
 * without the server.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  session_id.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SESSION_ID_H
#define KS_SESSION_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest local session ID and serial# (32 bits, unsigned). */
#define KS_SESSION_ID_MAX	UINT32_C(4294967295)

/*
 * A node of a cluster (kill_session.node_id N >= 1) hands out the session
 * IDs N * 10^10 + local: session 4112276987 of node 3 is 34112276987.  An
 * ID below 10^10 carries no node.
 */
#define KS_NODE_FACTOR		INT64_C(10000000000)
#define KS_NODE_MAX			9999

/* What a session string names. */
typedef struct KsSessionRef
{
	int64_t		id;				/* the session ID as written */
	uint32_t	serial;			/* serial#, 0 if not given */
	bool		has_serial;
	int			node;			/* @N, 0 if not given */
} KsSessionRef;

typedef enum KsSessionParse
{
	KS_SESSION_OK,
	KS_SESSION_INVALID,			/* not a session string */
	KS_SESSION_NODE_MISMATCH	/* @N names another node than the ID */
} KsSessionParse;

/*
 * Parse 'sid', 'sid, serial#' or Oracle RAC's 'sid, serial#, @N' from the
 * len bytes at str.
 *
 * Blanks (spaces and tabs) are allowed around each part, and leading zeros
 * in each number.  sid is a local ID (1..4294967295) or one carrying its
 * node (node * 10^10 + local, node 1..9999); serial# is 0..4294967295; N is
 * 1..9999 and must be the node the ID carries, if it carries one.
 * Anything else -- an empty string, signs, letters, decimals, an empty
 * part, a fourth part, a NUL byte -- is rejected.  On KS_SESSION_OK and
 * KS_SESSION_NODE_MISMATCH *ref is set; otherwise it is left unset.
 */
extern KsSessionParse ks_parse_session_id(const char *str, size_t len,
										  KsSessionRef *ref);

/*
 * Oracle's CANCEL SQL string, 'sid, serial#[, @N][, sql_id]': the SQL_ID
 * part, if there is one, split from the session string before it.
 */
typedef enum KsSqlIdParse
{
	KS_SQL_ID_NONE,				/* no SQL_ID part: all of it is the session */
	KS_SQL_ID_OK,				/* a SQL_ID part, a query ID */
	KS_SQL_ID_INVALID			/* a SQL_ID part that is not a query ID */
} KsSqlIdParse;

/*
 * Split the len bytes at str.  A SQL_ID part is the last of three parts
 * whose third does not start with '@', or the last of four or more; it
 * must be a query ID as PostgreSQL shows it, a signed 64-bit decimal
 * integer, with blanks around it and leading zeros allowed.  On
 * KS_SQL_ID_OK, *session_len is the length of the session string before
 * it (without its comma) and *sql_id the query ID; on KS_SQL_ID_NONE,
 * *session_len is len.
 */
extern KsSqlIdParse ks_split_sql_id(const char *str, size_t len,
									size_t *session_len, int64_t *sql_id);

/* The node an ID carries (0 for none) and its local part. */
static inline int
ks_id_node(int64_t id)
{
	return (int) (id / KS_NODE_FACTOR);
}

static inline uint32_t
ks_id_local(int64_t id)
{
	return (uint32_t) (id % KS_NODE_FACTOR);
}

/* Whether id is a session ID: a valid local part, a node in range. */
static inline bool
ks_id_valid(int64_t id)
{
	return id >= 1 && ks_id_node(id) <= KS_NODE_MAX &&
		id % KS_NODE_FACTOR >= 1 && id % KS_NODE_FACTOR <= KS_SESSION_ID_MAX;
}

/* The ID a parsed string names: @N puts a node on an ID without one. */
static inline int64_t
ks_ref_id(const KsSessionRef *ref)
{
	if (ks_id_node(ref->id) == 0 && ref->node != 0)
		return ref->node * KS_NODE_FACTOR + ref->id;
	return ref->id;
}

#endif							/* KS_SESSION_ID_H */
