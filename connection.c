/*-------------------------------------------------------------------------
 *
 * connection.c
 *		The connections to other nodes that a backend keeps between calls.
 *
 * A call for another node's session costs a connection (and with TLS and
 * SCRAM, several round trips) unless one is kept, as postgres_fdw keeps
 * one per user mapping for the life of the backend.  Here one is kept per
 * foreign server and role: the role the call runs as (GetUserId()), so
 * that a connection is never used by any role but the one whose user
 * mapping opened it, across SET ROLE and SECURITY DEFINER functions.
 *
 * Keying by role also keeps a connection's origin true for its whole life.
 * The origin (kill_session.origin: this node, this backend's session ID
 * and pid, and the role) is given once, when the connection starts, and
 * the node lets nothing change it afterwards; a PUBLIC user mapping used
 * by two roles after SET ROLE still gives each role its own connection,
 * with its own origin, rather than one that would name the first role for
 * the calls of the second.  The origin is kept with the connection and
 * compared when it is taken, so that a role renamed meanwhile gets a new
 * connection too.
 *
 * A connection is given back for keeping only when its call ended cleanly
 * (an answer, no transaction left open there); a call that ended any other
 * way, an error in the middle of it included, closes its connection, as
 * its state is unknown.  Kept connections are dropped when the foreign
 * server or a user mapping changes (syscache callbacks, as postgres_fdw's
 * connection.c does), when the mapping that a role would use now is
 * another one, when kill_session.keep_connections is turned off, by
 * kill_session_disconnect_all(), and at backend exit.
 *
 * The forwarding files read the directory and check every rule of a call
 * on every call, whether it opens a connection or takes a kept one: who
 * owns the server, where each option comes from, the password
 * (node_option.c), and who the node is (its node ID, system, database and
 * the object to run, in the round trip before the call: node_call.c).  So
 * a change of the directory needs no invalidation: a kept connection never
 * serves another node than the directory names now.  node_call.c also
 * checks that a kept connection is still alive before it sends anything
 * on it, and opens a new one if not.
 *
 * This file owns the kept connections.  It must not call back into the
 * forwarding files: they call it.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  connection.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <poll.h>

#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "kill_session.h"

/* kill_session.keep_connections */
static bool ks_keep_connections = true;

/* A kept connection, by foreign server and role. */
typedef struct KsConnKey
{
	Oid			serverid;
	Oid			userid;
} KsConnKey;

typedef struct KsConnEntry
{
	KsConnKey	key;
	PGconn	   *conn;			/* NULL once closed */
	Oid			umid;			/* the user mapping that opened it */
	char	   *origin;			/* the origin it was opened with */
	uint32		server_hash;	/* syscache hash values, for invalidation */
	uint32		mapping_hash;
	bool		invalid;		/* its server or mapping changed */
} KsConnEntry;

static HTAB *ks_conns = NULL;

PG_FUNCTION_INFO_V1(kill_session_connections);
PG_FUNCTION_INFO_V1(kill_session_disconnect_all);

/* Close a connection of a call, or a kept one. */
void
ks_connection_close(PGconn *conn)
{
	if (conn == NULL)
		return;
	PQfinish(conn);
	ReleaseExternalFD();
}

static void
ks_close_entry(KsConnEntry *entry)
{
	ks_connection_close(entry->conn);
	entry->conn = NULL;
	if (entry->origin != NULL)
		pfree(entry->origin);
	entry->origin = NULL;
}

/* Close every kept connection. */
static int
ks_close_all(void)
{
	HASH_SEQ_STATUS scan;
	KsConnEntry *entry;
	int			n = 0;

	if (ks_conns == NULL)
		return 0;
	hash_seq_init(&scan, ks_conns);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (entry->conn != NULL)
			n++;
		ks_close_entry(entry);
		hash_search(ks_conns, &entry->key, HASH_REMOVE, NULL);
	}
	return n;
}

/* Mark the connections of a changed server or mapping (0: all). */
static void
ks_catalog_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	KsConnEntry *entry;

	hash_seq_init(&scan, ks_conns);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && entry->server_hash == hashvalue) ||
			(cacheid == USERMAPPINGOID && entry->mapping_hash == hashvalue))
			entry->invalid = true;
	}
}


static void
ks_close_at_exit(int code, Datum arg)
{
	ks_close_all();
}

/* The table of kept connections, made on first use. */
static void
ks_conns_init(void)
{
	HASHCTL		ctl;

	if (ks_conns != NULL)
		return;
	ctl.keysize = sizeof(KsConnKey);
	ctl.entrysize = sizeof(KsConnEntry);
	ks_conns = hash_create("kill_session connections", 8, &ctl,
						   HASH_ELEM | HASH_BLOBS);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, ks_catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, ks_catalog_changed, (Datum) 0);
	on_proc_exit(ks_close_at_exit, (Datum) 0);
}

static void
ks_keep_connections_assign(bool newval, void *extra)
{
	if (!newval)
		ks_close_all();
}

void
ks_define_connection_settings(void)
{
	DefineCustomBoolVariable("kill_session.keep_connections",
							 "Keeps the connections to other nodes between calls.",
							 "One connection per foreign server and role is kept for the life of the "
							 "session; off closes each one after its call.",
							 &ks_keep_connections,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, ks_keep_connections_assign, NULL);
}

/*
 * Whether a kept connection is still there, before anything is sent on it:
 * open, idle, and not closed by its node meanwhile (what the node sent,
 * its FATAL and end of file when it restarted or ended the session, is
 * read without waiting).
 */
static bool
ks_connection_alive(PGconn *conn)
{
	for (;;)
	{
		struct pollfd pfd;

		if (PQstatus(conn) != CONNECTION_OK ||
			PQtransactionStatus(conn) != PQTRANS_IDLE)
			return false;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) <= 0)
			return true;
		if (!PQconsumeInput(conn))
			return false;
	}
}

/*
 * A kept connection to server for role userid through user mapping umid,
 * opened with origin, alive, taken out of the table for a call; or NULL.
 */
PGconn *
ks_connection_take(Oid serverid, Oid userid, Oid umid, const char *origin)
{
	KsConnKey	key = {serverid, userid};
	KsConnEntry *entry;
	PGconn	   *conn;

	if (!ks_keep_connections)
		return NULL;
	ks_conns_init();
	entry = hash_search(ks_conns, &key, HASH_FIND, NULL);
	if (entry == NULL)
		return NULL;
	conn = entry->conn;
	entry->conn = NULL;
	if (conn != NULL &&
		(entry->invalid || entry->umid != umid ||
		 entry->origin == NULL || strcmp(entry->origin, origin) != 0 ||
		 !ks_connection_alive(conn)))
	{
		ks_connection_close(conn);
		conn = NULL;
	}
	ks_close_entry(entry);
	hash_search(ks_conns, &key, HASH_REMOVE, NULL);
	return conn;
}

/*
 * A call is done with conn, opened to server for role userid through user
 * mapping umid with origin: keep it if the call ended cleanly (clean) and
 * keeping is on, otherwise close it.
 */
void
ks_connection_give_back(Oid serverid, Oid userid, Oid umid, const char *origin,
						PGconn *conn, bool clean)
{
	KsConnKey	key = {serverid, userid};
	KsConnEntry *entry;
	bool		found;

	if (conn == NULL)
		return;
	if (!clean || !ks_keep_connections ||
		PQstatus(conn) != CONNECTION_OK ||
		PQtransactionStatus(conn) != PQTRANS_IDLE)
	{
		ks_connection_close(conn);
		return;
	}
	ks_conns_init();
	entry = hash_search(ks_conns, &key, HASH_ENTER, &found);
	if (found && entry->conn != NULL)
	{
		/* Two calls of one statement to one server: keep one. */
		ks_connection_close(conn);
		return;
	}
	if (!found)
		entry->origin = NULL;
	else if (entry->origin != NULL)
		pfree(entry->origin);
	entry->origin = origin != NULL ?
		MemoryContextStrdup(TopMemoryContext, origin) : NULL;
	/* Its notices have nobody to go to until a call takes it again. */
	PQsetNoticeReceiver(conn, ks_ignore_notice, NULL);
	entry->conn = conn;
	entry->umid = umid;
	entry->server_hash = GetSysCacheHashValue1(FOREIGNSERVEROID,
											   ObjectIdGetDatum(serverid));
	entry->mapping_hash = GetSysCacheHashValue1(USERMAPPINGOID,
												ObjectIdGetDatum(umid));
	entry->invalid = false;
}

/* A notice receiver that drops what it is given. */
void
ks_ignore_notice(void *arg, const PGresult *res)
{
}

/*
 * kill_session_connections() returns setof (server_name text, user_name
 * text, valid boolean): the connections this session keeps, as
 * postgres_fdw_get_connections() lists its own.
 */
Datum
kill_session_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS scan;
	KsConnEntry *entry;

	InitMaterializedSRF(fcinfo, 0);
	if (ks_conns == NULL)
		return (Datum) 0;
	hash_seq_init(&scan, ks_conns);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		ForeignServer *server;
		char	   *user;
		int			i = 0;

		if (entry->conn == NULL)
			continue;
		server = GetForeignServerExtended(entry->key.serverid, FSV_MISSING_OK);
		user = GetUserNameFromId(entry->key.userid, true);
		if (server != NULL)
			values[i] = CStringGetTextDatum(server->servername);
		else
			nulls[i] = true;	/* dropped meanwhile */
		i++;
		if (user != NULL)
			values[i] = CStringGetTextDatum(user);
		else
			nulls[i] = true;
		i++;
		values[i++] = BoolGetDatum(!entry->invalid);
		Assert(i == lengthof(values));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * kill_session_disconnect_all() returns boolean: close every connection
 * this session keeps; true if there was one, as
 * postgres_fdw_disconnect_all() says.
 */
Datum
kill_session_disconnect_all(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ks_close_all() > 0);
}
