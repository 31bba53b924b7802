/*-------------------------------------------------------------------------
 *
 * node_call.c
 *		A call to another node, step by step: start it, connect, make sure
 *		of who the node is, and send it the call.
 *
 * A call for another node's session connects to that node's foreign
 * server, as node_option.c allows, and runs the same SQL there, where the
 * node makes its own privilege checks.  Before anything else runs there,
 * the node says who it is: its kill_session.node_id, its
 * system_identifier, its database, and the OID of the object the call
 * runs, which must be this extension's (a physical standby has the same
 * OIDs).  The same query sets search_path to pg_catalog and passes the
 * caller's kill_session.wait_timeout, which travels in the call.  On a
 * connection just opened, and for a read, the question, the node's own
 * check of the same facts and the call go in one pipeline: one round trip,
 * and a node that is not the one asked for stops at its own check, before
 * the call is parsed.  An action on a kept connection waits for the answer
 * before it sends the call, so that a link that died while the connection
 * was idle costs nothing but an error that says nothing was done.  This
 * check guards against mistakes; TLS with verify-full guards against a
 * network attacker.
 *
 * Every call is bounded: kill_session.node_timeout to resolve, connect and
 * be checked, that plus the caller's wait to answer, in 64 bits.  Host
 * names are resolved by resolve.c, so that a slow resolver neither
 * outlasts the bound nor blocks a cancel.
 *
 * This file owns one call's steps.  It must not wait (node_drive.c waits
 * for every call at once), nor decide which options a call may use
 * (node_option.c), nor read the directory or know what a call is for
 * (forward.c).
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  node_call.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#include "kill_session.h"
#include "node_answer.h"
#include "node_call.h"
#include "node_option.h"

/* kill_session.node_timeout, in milliseconds */
static int	ks_node_timeout = 3000;

/*
 * Who the node is, and what it would run, before anything else runs there:
 * $1 the object the call runs, as regprocedure or (with $2) regclass text,
 * every name in it qualified.  Then the session's settings: search_path
 * first, and the caller's kill_session.wait_timeout ($3) for the calls that
 * wait there.  The node ID is NULL where kill_session is not loaded.
 */
#define KS_CHECK_SQL \
	"SELECT pg_catalog.set_config('search_path', 'pg_catalog', false), " \
	"pg_catalog.current_setting('kill_session.node_id', true), " \
	"s.system_identifier, " \
	"pg_catalog.current_database(), " \
	"CASE WHEN $2::pg_catalog.bool " \
	"THEN pg_catalog.to_regclass($1)::pg_catalog.oid " \
	"ELSE pg_catalog.to_regprocedure($1)::pg_catalog.oid END, " \
	"pg_catalog.set_config('kill_session.wait_timeout', $3, false) " \
	"FROM pg_catalog.pg_control_system() s"
#define KS_CHECK_COLS	6
#define KS_CHECK_PARAMS 3

/*
 * The same check, made by the node itself: it fails unless the node is
 * node $1 of the system $2, in database $3, where $4 (a relation if $5)
 * has OID $6.  Sent in one pipeline between KS_CHECK_SQL and the call, it
 * stops the pipeline before the call is even parsed on a node that is not
 * the one asked for.  The failing branch cannot be folded into a constant
 * when the statement is planned: concat() is only stable.
 */
#define KS_GUARD_SQL \
	"SELECT CASE WHEN " \
	"pg_catalog.current_setting('kill_session.node_id', true) OPERATOR(pg_catalog.=) $1 " \
	"AND s.system_identifier::pg_catalog.text OPERATOR(pg_catalog.=) $2 " \
	"AND pg_catalog.current_database() OPERATOR(pg_catalog.=) $3::pg_catalog.name " \
	"AND CASE WHEN $5::pg_catalog.bool " \
	"THEN pg_catalog.to_regclass($4)::pg_catalog.oid " \
	"ELSE pg_catalog.to_regprocedure($4)::pg_catalog.oid END " \
	"OPERATOR(pg_catalog.=) $6::pg_catalog.oid " \
	"THEN true ELSE CAST(pg_catalog.concat('kill_session: this is not node ', $1, " \
	"' of the caller''s cluster with its extension in database ', $3) AS pg_catalog.bool) END " \
	"FROM pg_catalog.pg_control_system() s"

void
ks_define_call_settings(void)
{
	DefineCustomIntVariable("kill_session.node_timeout",
							"Sets how long a call for another node's session waits to reach that node.",
							"A node that has not connected and answered who it is within this many "
							"milliseconds is reported unreachable; its answer to the call itself "
							"may take kill_session.wait_timeout more.",
							&ks_node_timeout,
							3000,
							1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* kill_session.node_timeout, in milliseconds */
int
ks_node_timeout_ms(void)
{
	return ks_node_timeout;
}

/*
 * How long a node may take to answer a call once checked, in 64 bits: the
 * node's timeout and the caller's wait.
 */
int64
ks_answer_timeout(const KsNodeCall *call)
{
	return (int64) ks_node_timeout + call->wait_ms;
}

static void ks_call_open(KsNodeCall *call);

/*
 * Start the call to its node's foreign server: check the server and the
 * calling role's user mapping, log what is asked of the node, and start
 * resolving its host names or connecting.  A refusal here fails the call.
 */
void
ks_call_start(KsNodeCall *call)
{
	call->state = KS_CALL_DONE;
	call->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 (int64) ks_node_timeout);
	if (!ks_call_trusted_options(call))
		return;

	/* The caller's node says what it asks, before it asks. */
	if (call->action != NULL)
		ereport(LOG,
				(errmsg("session " INT64_FORMAT " (pid %d, role \"%s\") of node %d forwards to node %d (foreign server \"%s\"): %s",
						ks_global_id(ks_my_session_id()), MyProcPid,
						GetUserNameFromId(call->userid, false), ks_node_id(),
						call->node, call->server, call->action)));

	/* A connection kept from an earlier call of this role, if alive. */
	call->conn = ks_connection_take(call->serverid, call->userid, call->umid,
									call->origin);
	if (call->conn != NULL)
	{
		PQsetNoticeReceiver(call->conn, ks_notice_receiver, call);
		call->kept = true;
		call->state = KS_CALL_KEPT;
		return;
	}
	ks_call_open(call);
}

/*
 * Open a new connection for the call: resolve its host names first if it
 * has any, or connect at once.
 */
static void
ks_call_open(KsNodeCall *call)
{
	const char *host = ks_call_option(call, "host");

	if (host != NULL && ks_call_option(call, "hostaddr") == NULL &&
		ks_resolve_needed(host))
	{
		if (!ks_resolve_start(&call->resolver, host))
		{
			/*
			 * pipe2() or fork() failed; fork() with ENOMEM under
			 * vm.overcommit_memory = 2, with EAGAIN at a process limit.
			 */
			char	   *why = psprintf("Could not start resolving its host name: %m.");

			ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
						 psprintf("could not connect to node %d", call->node),
						 why,
						 psprintf("Give foreign server \"%s\" option hostaddr, the node's address: then no process is started to resolve its name.",
								  call->server));
			return;
		}
		call->state = KS_CALL_RESOLVING;
		return;
	}
	call->state = KS_CALL_NEW;
}

/* Connect, with the call's options. */
void
ks_call_connect(KsNodeCall *call)
{
	call->state = KS_CALL_DONE;
	if (!AcquireExternalFD())
	{
		ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					 psprintf("could not connect to node %d", call->node),
					 pstrdup("There are too many open files on the local server."),
					 NULL);
		return;
	}
	call->conn = PQconnectStartParams(call->keywords, call->options, false);
	if (call->conn == NULL)
	{
		ReleaseExternalFD();
		ks_call_fail(call, ERRCODE_OUT_OF_MEMORY, pstrdup("out of memory"),
					 NULL, NULL);
		return;
	}
	if (PQstatus(call->conn) == CONNECTION_BAD)
	{
		ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					 psprintf("could not connect to node %d", call->node),
					 pchomp(PQerrorMessage(call->conn)), NULL);
		return;
	}
	/* Until connected, errors carry their SQLSTATE (ks_call_connect_failed). */
	PQsetErrorVerbosity(call->conn, PQERRORS_VERBOSE);
	PQsetNoticeReceiver(call->conn, ks_notice_receiver, call);
	call->state = KS_CALL_CONNECTING;
	call->poll = PGRES_POLLING_WRITING;
}

/* The object the call runs, as the node is asked to resolve it. */
static char *
ks_call_object(const KsNodeCall *call, bool *is_relation)
{
	*is_relation = get_rel_relkind(call->object) != '\0';
	if (*is_relation)
		return quote_qualified_identifier(get_namespace_name(get_rel_namespace(call->object)),
										  get_rel_name(call->object));
	return format_procedure_qualified(call->object);
}

/* Send a query with text parameters; a send that fails fails the call. */
void
ks_call_send(KsNodeCall *call, const char *sql, int nparams,
			 const char *const *params, KsCallState next)
{
	if (!PQsendQueryParams(call->conn, sql, nparams, NULL, params, NULL, NULL, 0))
	{
		ks_call_fail(call, ERRCODE_CONNECTION_FAILURE,
					 psprintf("could not send a query to node %d", call->node),
					 pchomp(PQerrorMessage(call->conn)), NULL);
		return;
	}
	call->state = next;
	call->sent = (next == KS_CALL_RUNNING);
	call->flushing = true;
}

/*
 * Send who-are-you (KS_CHECK_SQL with check_params), the node's own check
 * and the call in one pipeline, ended by one Sync: an error in either
 * check makes the node skip the rest, the call unparsed.  False if libpq
 * could not queue it.
 */
static bool
ks_call_send_pipeline(KsNodeCall *call, const char *const *check_params)
{
	const char *guard_params[6];

	guard_params[0] = psprintf("%d", call->node);
	guard_params[1] = psprintf(UINT64_FORMAT, GetSystemIdentifier());
	guard_params[2] = get_database_name(MyDatabaseId);
	guard_params[3] = check_params[0];	/* the object, as the check names it */
	guard_params[4] = check_params[1];
	guard_params[5] = psprintf("%u", call->object);
	if (!PQenterPipelineMode(call->conn) ||
		!PQsendQueryParams(call->conn, KS_CHECK_SQL, KS_CHECK_PARAMS, NULL, check_params,
						   NULL, NULL, 0) ||
		!PQsendQueryParams(call->conn, KS_GUARD_SQL, 6, NULL, guard_params,
						   NULL, NULL, 0))
		return false;
	/* From here on, the call may reach the node. */
	call->sent = true;
	if (!PQsendQueryParams(call->conn, call->sql, call->nparams, NULL,
						   call->params, NULL, NULL, 0) ||
		!PQpipelineSync(call->conn))
		return false;
	call->pipelined = true;
	call->state = KS_CALL_CHECKING;
	call->flushing = true;
	call->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 ks_answer_timeout(call));
	return true;
}

/* A kept connection found broken: drop it and open a new one, once. */
static void
ks_call_reopen(KsNodeCall *call)
{
	ks_connection_close(call->conn);
	call->conn = NULL;
	call->kept = false;
	call->pipelined = false;
	call->sent = false;
	ks_call_open(call);
}

/*
 * Connected: check the connection, then ask who the node is.
 *
 * On a connection just opened, or for a read, the question and the call go
 * together in one pipeline (ks_call_send_pipeline), one round trip.  An
 * action on a kept connection asks first and sends the call on the answer:
 * a link that died while the connection was idle is then found before the
 * call is sent, and the caller learns that nothing was done there.
 */
void
ks_call_connected(KsNodeCall *call)
{
	const char *params[KS_CHECK_PARAMS];
	bool		is_relation;
	bool		pipeline = !call->kept || call->action == NULL;

	PQsetErrorVerbosity(call->conn, PQERRORS_DEFAULT);
	if (call->password_required && !PQconnectionUsedPassword(call->conn))
	{
		ks_call_fail(call, ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED,
					 pstrdup("password is required"),
					 pstrdup("Non-superuser cannot connect if the server does not request a password."),
					 pstrdup("Target server's authentication method must be changed or password_required=false set in the user mapping attributes."));
		return;
	}
	if (PQsetnonblocking(call->conn, 1) != 0)
	{
		ks_call_fail(call, ERRCODE_CONNECTION_FAILURE,
					 psprintf("could not connect to node %d", call->node),
					 pchomp(PQerrorMessage(call->conn)), NULL);
		return;
	}
	params[0] = ks_call_object(call, &is_relation);
	params[1] = is_relation ? "true" : "false";
	params[2] = psprintf("%d", call->wait_ms);
	if (pipeline)
	{
		if (ks_call_send_pipeline(call, params))
			call->kept = false;
		else if (call->kept)
			ks_call_reopen(call);	/* a read: a new connection, once */
		else
			ks_call_lost(call, pchomp(PQerrorMessage(call->conn)));
		return;
	}
	if (call->kept &&
		!PQsendQueryParams(call->conn, KS_CHECK_SQL, KS_CHECK_PARAMS, NULL, params,
						   NULL, NULL, 0))
	{
		/* Broken before anything was sent: a new connection, once. */
		ks_call_reopen(call);
		return;
	}
	if (call->kept)
	{
		call->kept = false;
		call->state = KS_CALL_CHECKING;
		call->flushing = true;
		return;
	}
	ks_call_send(call, KS_CHECK_SQL, KS_CHECK_PARAMS, params, KS_CALL_CHECKING);
}

/* Fail the call because the node is not what the directory says. */
static void
ks_call_not_node(KsNodeCall *call, char *message, char *detail, char *hint)
{
	ks_call_fail(call, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, message,
				 detail, hint);
}

/*
 * The node's answer to who it is: the node the directory names, with this
 * extension in this database, or fail before anything runs there.
 */
void
ks_call_checked(KsNodeCall *call, const PGresult *res)
{
	const char *node;
	const char *system;
	const char *database;
	const char *object;
	char	   *my_system = psprintf(UINT64_FORMAT, GetSystemIdentifier());
	char	   *my_database = get_database_name(MyDatabaseId);
	bool		is_relation;

	if (PQntuples(res) != 1 || PQnfields(res) != KS_CHECK_COLS)
	{
		ks_call_fail(call, ERRCODE_PROTOCOL_VIOLATION,
					 psprintf("node %d did not say who it is", call->node),
					 NULL, NULL);
		return;
	}
	node = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
	system = PQgetvalue(res, 0, 2);
	database = PQgetvalue(res, 0, 3);
	object = PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4);
	if (node == NULL)
		ks_call_not_node(call,
						 psprintf("foreign server \"%s\" of node %d does not run kill_session",
								  call->server, call->node),
						 pstrdup("kill_session.node_id is not defined there: the library is not in its shared_preload_libraries."),
						 pstrdup("Correct the server's row in kill_session_nodes, or the foreign server's options."));
	else if (strcmp(node, psprintf("%d", call->node)) != 0 ||
			 strcmp(system, my_system) != 0)
		ks_call_not_node(call,
						 psprintf("foreign server \"%s\" is not node %d of this cluster",
								  call->server, call->node),
						 psprintf("It is node %s of the system with identifier %s; this server's system identifier is %s.",
								  node, system, my_system),
						 pstrdup("Correct the server's row in kill_session_nodes, or the foreign server's options."));
	else if (strcmp(database, my_database) != 0)
		ks_call_not_node(call,
						 psprintf("foreign server \"%s\" of node %d connects to database \"%s\", not \"%s\"",
								  call->server, call->node, database, my_database),
						 pstrdup("A call runs only in the database of the extension that makes it."),
						 psprintf("ALTER SERVER %s OPTIONS (SET dbname %s);",
								  quote_identifier(call->server),
								  quote_literal_cstr(my_database)));
	else if (object == NULL ||
			 strcmp(object, psprintf("%u", call->object)) != 0)
		ks_call_not_node(call,
						 psprintf("node %d does not have this extension's %s %s",
								  call->node,
								  get_rel_relkind(call->object) != '\0' ? "view" : "function",
								  ks_call_object(call, &is_relation)),
						 object == NULL ?
						 pstrdup("The node has no such object.") :
						 psprintf("The node's has OID %s, this server's %u.", object,
								  call->object),
						 pstrdup("Nodes share one extension through replication; correct the directory."));
}
