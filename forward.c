/*-------------------------------------------------------------------------
 *
 * forward.c
 *		The sessions of other nodes: the directory of nodes, and the calls
 *		run on them over libpq.
 *
 * A node of a cluster names every other node in the table
 * kill_session_nodes: node ID -> foreign server.  A call for another
 * node's session connects to that server with the server's options and the
 * calling role's user mapping, under postgres_fdw's rules: USAGE on the
 * server, and a non-superuser's mapping must hold a password that the
 * server asks for.  It checks that the server is that node of this
 * cluster (its kill_session.node_id and its system_identifier), then runs
 * the same SQL there, where the node makes its own privilege checks.
 *
 * Many nodes are called at once: one wait loop drives every connection.
 * Each call is bounded: kill_session.node_timeout to connect and be
 * checked, that plus kill_session.wait_timeout (which the node is given
 * too) to answer.  A node's NOTICEs and WARNINGs are passed on as they
 * come; its error is kept, with its SQLSTATE, for the caller to raise;
 * both with a CONTEXT naming the node.
 *
 * This is the only file that uses libpq.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  forward.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xlog.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "kill_session.h"

/* kill_session.node_timeout, in milliseconds */
static int	ks_node_timeout = 3000;

/* Where a call stands. */
typedef enum KsCallState
{
	KS_CALL_NEW,
	KS_CALL_CONNECTING,
	KS_CALL_CHECKING,			/* asked who the node is */
	KS_CALL_RUNNING,			/* sent its SQL */
	KS_CALL_DONE				/* answered or failed */
} KsCallState;

/*
 * Who the node is, and the caller's kill_session.wait_timeout for the calls
 * that wait there.
 */
#define KS_CHECK_SQL \
	"SELECT pg_catalog.current_setting('kill_session.node_id'), " \
	"s.system_identifier, " \
	"pg_catalog.set_config('kill_session.wait_timeout', $1, false) " \
	"FROM pg_catalog.pg_control_system() s"

void
ks_define_forward_settings(void)
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

/*
 * An object of the extension, by name, qualified with its schema: the
 * schema of fn, a function of the extension.
 */
char *
ks_extension_object(Oid fn, const char *name)
{
	return quote_qualified_identifier(get_namespace_name(get_func_namespace(fn)),
									  name);
}

/*
 * The foreign server of node in the directory, or NULL; fn is a function of
 * the extension, whose schema holds the directory.
 */
char *
ks_node_server(Oid fn, int node)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(node)};
	char	   *server = NULL;

	SPI_connect();
	if (SPI_execute_with_args(psprintf("SELECT server_name FROM %s WHERE node_id = $1",
									   ks_extension_object(fn, "kill_session_nodes")),
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kill_session_nodes");
	if (SPI_processed == 1)
	{
		char	   *value = SPI_getvalue(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1);

		if (value != NULL)
			server = MemoryContextStrdup(caller, value);
	}
	SPI_finish();
	return server;
}

/* Every node of the directory but this one, with its server; *n is set. */
KsNodeCall *
ks_directory_calls(Oid fn, int *n)
{
	MemoryContext caller = CurrentMemoryContext;
	KsNodeCall *calls;
	uint64		i;

	SPI_connect();
	if (SPI_execute(psprintf("SELECT node_id, server_name FROM %s WHERE node_id <> %d ORDER BY node_id",
							 ks_extension_object(fn, "kill_session_nodes"),
							 ks_node_id()),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kill_session_nodes");
	calls = MemoryContextAllocZero(caller,
								   sizeof(KsNodeCall) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		calls[i].node = pg_strtoint32(SPI_getvalue(tuple, desc, 1));
		calls[i].server = MemoryContextStrdup(caller,
											  SPI_getvalue(tuple, desc, 2));
	}
	*n = (int) SPI_processed;
	SPI_finish();
	return calls;
}

/* The call failed: keep why, and close its connection. */
static void
ks_call_fail(KsNodeCall *call, int sqlerrcode, char *message, char *detail,
			 char *hint)
{
	if (call->conn != NULL)
	{
		PQfinish(call->conn);
		ReleaseExternalFD();
		call->conn = NULL;
	}
	call->failed = true;
	call->sqlerrcode = sqlerrcode;
	call->message = message;
	call->detail = detail;
	call->hint = hint;
	call->state = KS_CALL_DONE;
}

static char *
ks_result_field(const PGresult *res, int field)
{
	const char *value = PQresultErrorField(res, field);

	return value != NULL ? pstrdup(value) : NULL;
}

static int
ks_result_sqlstate(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (state == NULL || strlen(state) != 5)
		return ERRCODE_CONNECTION_FAILURE;
	return MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
}

/* The node reported an error: keep it as it sent it. */
static void
ks_call_fail_result(KsNodeCall *call, const PGresult *res)
{
	char	   *message = ks_result_field(res, PG_DIAG_MESSAGE_PRIMARY);

	ks_call_fail(call, ks_result_sqlstate(res),
				 message != NULL ? message : pchomp(PQerrorMessage(call->conn)),
				 ks_result_field(res, PG_DIAG_MESSAGE_DETAIL),
				 ks_result_field(res, PG_DIAG_MESSAGE_HINT));
}

/* A node's NOTICE or WARNING, passed on with the node named. */
static void
ks_notice_receiver(void *arg, const PGresult *res)
{
	KsNodeCall *call = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	int			elevel;

	if (severity == NULL || message == NULL)
		return;
	if (strcmp(severity, "WARNING") == 0)
		elevel = WARNING;
	else if (strcmp(severity, "NOTICE") == 0)
		elevel = NOTICE;
	else if (strcmp(severity, "INFO") == 0)
		elevel = INFO;
	else
		return;
	ereport(elevel,
			(errcode(ks_result_sqlstate(res)),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 errcontext("node %d (foreign server \"%s\")",
						call->node, call->server)));
}

/* Whether a user mapping's password_required is on: postgres_fdw's rule. */
static bool
ks_password_required(const UserMapping *user)
{
	ListCell   *cell;

	foreach(cell, user->options)
	{
		DefElem    *def = lfirst(cell);

		if (strcmp(def->defname, "password_required") == 0)
			return defGetBoolean(def);
	}
	return true;
}

/* Whether keyword is a libpq connection option that a server may set. */
static bool
ks_libpq_option(const PQconninfoOption *options, const char *keyword)
{
	const PQconninfoOption *opt;

	if (strcmp(keyword, "fallback_application_name") == 0 ||
		strcmp(keyword, "client_encoding") == 0)
		return false;
	for (opt = options; opt->keyword != NULL; opt++)
	{
		if (strcmp(opt->keyword, keyword) == 0)
			return strchr(opt->dispchar, 'D') == NULL;
	}
	return false;
}

/*
 * Start connecting to the call's node, as the calling role's user mapping
 * for its foreign server says.  A refusal here fails the call.
 */
static void
ks_call_start(KsNodeCall *call)
{
	static PQconninfoOption *libpq_options = NULL;
	ForeignServer *server;
	UserMapping *user;
	Oid			userid = GetUserId();
	const char **keywords;
	const char **values;
	bool		has_password = false;
	ListCell   *cell;
	int			n = 0;

	if (libpq_options == NULL)
	{
		libpq_options = PQconndefaults();
		if (libpq_options == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	call->state = KS_CALL_DONE;
	server = GetForeignServerByName(call->server, true);
	if (server == NULL)
	{
		ks_call_fail(call, ERRCODE_UNDEFINED_OBJECT,
					 psprintf("foreign server \"%s\" of node %d does not exist",
							  call->server, call->node),
					 NULL,
					 pstrdup("Create it, or name node's server in kill_session_nodes."));
		return;
	}
	/*
	 * Options are taken as libpq's only where a validator has checked them,
	 * as postgres_fdw's and dblink's do: which may name a password, a
	 * password file or a key, and in which object.
	 */
	if (!OidIsValid(GetForeignDataWrapper(server->fdwid)->fdwvalidator))
	{
		ks_call_fail(call, ERRCODE_FDW_INVALID_OPTION_NAME,
					 psprintf("foreign server \"%s\" of node %d has no option validator",
							  server->servername, call->node),
					 pstrdup("Its foreign-data wrapper does not check its options and user mappings."),
					 pstrdup("Use a server of postgres_fdw or dblink_fdw."));
		return;
	}
	if (ks_server_aclcheck(server->serverid, userid) != ACLCHECK_OK)
	{
		ks_call_fail(call, ERRCODE_INSUFFICIENT_PRIVILEGE,
					 psprintf("permission denied for foreign server %s",
							  server->servername),
					 NULL, NULL);
		return;
	}
	if (!SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
							   ObjectIdGetDatum(server->serverid)) &&
		!SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							   ObjectIdGetDatum(server->serverid)))
	{
		ks_call_fail(call, ERRCODE_UNDEFINED_OBJECT,
					 psprintf("user mapping not found for user \"%s\", server \"%s\"",
							  GetUserNameFromId(userid, false),
							  server->servername),
					 NULL,
					 psprintf("Create a user mapping for the role on server \"%s\".",
							  server->servername));
		return;
	}
	user = GetUserMapping(userid, server->serverid);

	keywords = palloc(sizeof(char *) *
					  (list_length(server->options) + list_length(user->options) + 3));
	values = palloc(sizeof(char *) *
					(list_length(server->options) + list_length(user->options) + 3));
	foreach(cell, list_concat_copy(server->options, user->options))
	{
		DefElem    *def = lfirst(cell);

		if (!ks_libpq_option(libpq_options, def->defname))
			continue;
		keywords[n] = def->defname;
		values[n] = defGetString(def);
		if (strcmp(def->defname, "password") == 0 && values[n][0] != '\0')
			has_password = true;
		n++;
	}
	keywords[n] = "fallback_application_name";
	values[n++] = "kill_session";
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = values[n] = NULL;

	/*
	 * A non-superuser must not connect as this server's operating system
	 * user.
	 */
	if (!superuser_arg(userid) && !has_password && ks_password_required(user))
	{
		ks_call_fail(call, ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED,
					 pstrdup("password is required"),
					 pstrdup("Non-superusers must provide a password in the user mapping."),
					 NULL);
		return;
	}
	if (!AcquireExternalFD())
	{
		ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					 psprintf("could not connect to node %d", call->node),
					 pstrdup("There are too many open files on the local server."),
					 NULL);
		return;
	}
	call->conn = PQconnectStartParams(keywords, values, false);
	if (call->conn == NULL)
	{
		ReleaseExternalFD();
		ks_call_fail(call, ERRCODE_OUT_OF_MEMORY, pstrdup("out of memory"),
					 NULL, NULL);
		return;
	}
	call->password_required = !superuser_arg(userid) && ks_password_required(user);
	if (PQstatus(call->conn) == CONNECTION_BAD)
	{
		ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					 psprintf("could not connect to node %d", call->node),
					 pchomp(PQerrorMessage(call->conn)), NULL);
		return;
	}
	PQsetNoticeReceiver(call->conn, ks_notice_receiver, call);
	call->state = KS_CALL_CONNECTING;
	call->poll = PGRES_POLLING_WRITING;
	call->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 ks_node_timeout);
}

/* Send a query with text parameters; a send that fails fails the call. */
static void
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
	call->flushing = true;
}

/* Connected: check the connection, then ask who the node is. */
static void
ks_call_connected(KsNodeCall *call)
{
	const char *params[1];

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
	params[0] = psprintf("%d", ks_kill_wait_timeout());
	ks_call_send(call, KS_CHECK_SQL, 1, params, KS_CALL_CHECKING);
}

/* The node's answer to who it is: the node the directory names, or fail. */
static void
ks_call_checked(KsNodeCall *call, const PGresult *res)
{
	char	   *node;
	char	   *system;
	char	   *my_system = psprintf(INT64_FORMAT, (int64) GetSystemIdentifier());

	if (PQntuples(res) != 1 || PQnfields(res) != 3)
	{
		ks_call_fail(call, ERRCODE_PROTOCOL_VIOLATION,
					 psprintf("node %d did not say who it is", call->node),
					 NULL, NULL);
		return;
	}
	node = PQgetvalue(res, 0, 0);
	system = PQgetvalue(res, 0, 1);
	if (strcmp(node, psprintf("%d", call->node)) != 0 ||
		strcmp(system, my_system) != 0)
		ks_call_fail(call, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
					 psprintf("foreign server \"%s\" is not node %d of this cluster",
							  call->server, call->node),
					 psprintf("It is node %s of the system with identifier %s; this server's system identifier is %s.",
							  node, system, my_system),
					 pstrdup("Correct the server's row in kill_session_nodes, or the foreign server's options."));
}

/* The node's answer to the call's SQL: its rows, as text. */
static void
ks_call_answered(KsNodeCall *call, const PGresult *res)
{
	int			i;
	int			j;

	call->nrows = PQntuples(res);
	call->ncols = PQnfields(res);
	call->values = MemoryContextAllocZero(call->context,
										  sizeof(char *) * Max(call->nrows * call->ncols, 1));
	for (i = 0; i < call->nrows; i++)
	{
		for (j = 0; j < call->ncols; j++)
		{
			if (!PQgetisnull(res, i, j))
				call->values[i * call->ncols + j] =
					MemoryContextStrdup(call->context, PQgetvalue(res, i, j));
		}
	}
}

/* Take what the node has sent, as far as it goes without waiting. */
static void
ks_call_read(KsNodeCall *call)
{
	if (!PQconsumeInput(call->conn))
	{
		ks_call_fail(call, ERRCODE_CONNECTION_FAILURE,
					 psprintf("lost the connection to node %d", call->node),
					 pchomp(PQerrorMessage(call->conn)), NULL);
		return;
	}
	while (call->state != KS_CALL_DONE && !PQisBusy(call->conn))
	{
		PGresult   *res = PQgetResult(call->conn);

		if (res == NULL)
		{
			/* The query is over. */
			if (call->state == KS_CALL_CHECKING)
			{
				call->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															 ks_node_timeout + ks_kill_wait_timeout());
				ks_call_send(call, call->sql, call->nparams, call->params,
							 KS_CALL_RUNNING);
			}
			else
				call->state = KS_CALL_DONE;
			return;
		}
		switch (PQresultStatus(res))
		{
			case PGRES_TUPLES_OK:
			case PGRES_COMMAND_OK:
				if (call->state == KS_CALL_CHECKING)
					ks_call_checked(call, res);
				else
					ks_call_answered(call, res);
				break;
			default:
				ks_call_fail_result(call, res);
				break;
		}
		PQclear(res);
	}
}

/* Move the call on, as its socket allows; *events is what it waits for. */
static void
ks_call_step(KsNodeCall *call, uint32 *events)
{
	*events = 0;
	if (call->state == KS_CALL_CONNECTING)
	{
		call->poll = PQconnectPoll(call->conn);
		if (call->poll == PGRES_POLLING_FAILED)
		{
			ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
						 psprintf("could not connect to node %d", call->node),
						 pchomp(PQerrorMessage(call->conn)), NULL);
			return;
		}
		if (call->poll == PGRES_POLLING_OK)
			ks_call_connected(call);
		else
		{
			*events = call->poll == PGRES_POLLING_READING ?
				WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
			return;
		}
	}
	if (call->state == KS_CALL_DONE)
		return;
	if (call->flushing)
	{
		int			r = PQflush(call->conn);

		if (r < 0)
		{
			ks_call_fail(call, ERRCODE_CONNECTION_FAILURE,
						 psprintf("lost the connection to node %d", call->node),
						 pchomp(PQerrorMessage(call->conn)), NULL);
			return;
		}
		call->flushing = (r == 1);
	}
	ks_call_read(call);
	if (call->state == KS_CALL_DONE)
		return;
	*events = WL_SOCKET_READABLE | (call->flushing ? WL_SOCKET_WRITEABLE : 0);
}

/* Whether the caller stops waiting for this call. */
static bool
ks_call_settled(const KsNodeCall *call, bool until_sent)
{
	if (call->state == KS_CALL_DONE)
		return true;
	return until_sent && call->state == KS_CALL_RUNNING && !call->flushing;
}

/*
 * Drive every call until each is settled: sent (until_sent) or done.  One
 * wait serves every socket, the latch (for interrupts) and the postmaster's
 * death; a call past its deadline fails.
 */
static void
ks_drive(KsNodeCall *calls, int n, bool until_sent)
{
	uint32	   *events = palloc0(sizeof(uint32) * Max(n, 1));
	bool	   *ready = palloc(sizeof(bool) * Max(n, 1));
	int			i;

	/*
	 * A connection just started waits until its socket is writable; every
	 * other call first takes what its node has sent already.
	 */
	for (i = 0; i < n; i++)
	{
		ready[i] = calls[i].state != KS_CALL_CONNECTING;
		if (!ready[i])
			events[i] = WL_SOCKET_WRITEABLE;
	}
	for (;;)
	{
		TimestampTz now;
		TimestampTz next_deadline = 0;
		WaitEventSet *set;
		WaitEvent	occurred[8];
		int			nwaiting = 0;
		int			nevents;
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		now = GetCurrentTimestamp();
		for (i = 0; i < n; i++)
		{
			KsNodeCall *call = &calls[i];

			if (call->state == KS_CALL_DONE)
				continue;
			if (now >= call->deadline)
			{
				bool		connecting = call->state == KS_CALL_CONNECTING ||
					call->state == KS_CALL_CHECKING;

				ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
							 connecting ?
							 psprintf("could not reach node %d", call->node) :
							 psprintf("node %d did not answer in time", call->node),
							 connecting ?
							 psprintf("It did not connect and say who it is within kill_session.node_timeout (%d ms).",
									  ks_node_timeout) :
							 psprintf("It did not answer within kill_session.node_timeout plus kill_session.wait_timeout (%d ms).",
									  ks_node_timeout + ks_kill_wait_timeout()),
							 NULL);
				continue;
			}
			if (ready[i])
			{
				ks_call_step(call, &events[i]);
				ready[i] = false;
			}
			if (ks_call_settled(call, until_sent))
				continue;
			nwaiting++;
			if (next_deadline == 0 || call->deadline < next_deadline)
				next_deadline = call->deadline;
		}
		if (nwaiting == 0)
			break;

		set = ks_create_wait_event_set(n + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (i = 0; i < n; i++)
		{
			if (calls[i].state != KS_CALL_DONE && events[i] != 0)
				AddWaitEventToSet(set, events[i], PQsocket(calls[i].conn), NULL,
								  &ready[i]);
		}
		timeout = Max(TimestampDifferenceMilliseconds(now, next_deadline), 1);
		nevents = WaitEventSetWait(set, timeout, occurred, lengthof(occurred),
								   PG_WAIT_EXTENSION);
		FreeWaitEventSet(set);
		for (i = 0; i < nevents; i++)
		{
			if (occurred[i].events & WL_LATCH_SET)
				ResetLatch(MyLatch);
			else if (occurred[i].user_data != NULL)
				*(bool *) occurred[i].user_data = true;
		}
	}
	pfree(events);
	pfree(ready);
}

/*
 * Connect to each call's node, check it and send it the call's SQL, all at
 * once; return when every call is sent or has failed.  Its answer comes
 * with ks_nodes_receive(); the connections are closed by ks_nodes_close(),
 * which the caller runs however it ends.
 */
void
ks_nodes_send(KsNodeCall *calls, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		calls[i].context = CurrentMemoryContext;
		ks_call_start(&calls[i]);
	}
	ks_drive(calls, n, true);
}

/* Wait for every call's answer, or its failure. */
void
ks_nodes_receive(KsNodeCall *calls, int n)
{
	ks_drive(calls, n, false);
}

void
ks_nodes_close(KsNodeCall *calls, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (calls[i].conn != NULL)
		{
			PQfinish(calls[i].conn);
			ReleaseExternalFD();
			calls[i].conn = NULL;
		}
	}
}

/* Raise a failed call's error at elevel, naming its node. */
void
ks_node_report(const KsNodeCall *call, int elevel)
{
	ereport(elevel,
			(errcode(call->sqlerrcode),
			 errmsg_internal("%s", call->message),
			 call->detail ? errdetail_internal("%s", call->detail) : 0,
			 call->hint ? errhint("%s", call->hint) : 0,
			 errcontext("node %d (foreign server \"%s\")",
						call->node, call->server)));
}

/*
 * Run this SQL function's call on the node that holds session id, whose
 * foreign server is server: the same function, the same arguments but the
 * session string at argno, which becomes the ID.  Returns its result; its
 * error is raised here.
 */
Datum
ks_forward_call(FunctionCallInfo fcinfo, int argno, int64 id,
				const char *server)
{
	Oid			fn = fcinfo->flinfo->fn_oid;
	Oid			rettype;
	Oid		   *argtypes;
	int			nargs;
	StringInfoData sql;
	const char **params;
	KsNodeCall	call = {0};
	Oid			typinput;
	Oid			typioparam;
	int			i;

	rettype = get_func_signature(fn, &argtypes, &nargs);
	params = palloc(sizeof(char *) * Max(nargs, 1));
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s(",
					 ks_extension_object(fn, get_func_name(fn)));
	for (i = 0; i < nargs; i++)
	{
		appendStringInfo(&sql, "%s$%d::%s", i > 0 ? ", " : "", i + 1,
						 format_type_be_qualified(argtypes[i]));
		if (i == argno)
			params[i] = psprintf(INT64_FORMAT, id);
		else if (i >= PG_NARGS() || PG_ARGISNULL(i))
			params[i] = NULL;
		else
		{
			Oid			typoutput;
			bool		varlena;

			getTypeOutputInfo(argtypes[i], &typoutput, &varlena);
			params[i] = OidOutputFunctionCall(typoutput, PG_GETARG_DATUM(i));
		}
	}
	appendStringInfoChar(&sql, ')');

	call.node = ks_id_node(id);
	call.server = pstrdup(server);
	call.sql = sql.data;
	call.nparams = nargs;
	call.params = params;
	PG_TRY();
	{
		ks_nodes_send(&call, 1);
		ks_nodes_receive(&call, 1);
	}
	PG_FINALLY();
	{
		ks_nodes_close(&call, 1);
	}
	PG_END_TRY();

	if (call.failed)
		ks_node_report(&call, ERROR);
	if (call.nrows != 1 || call.ncols != 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("node %d answered %d rows of %d columns", call.node,
						call.nrows, call.ncols),
				 errcontext("node %d (foreign server \"%s\")",
							call.node, call.server)));
	if (call.values[0] == NULL)
		PG_RETURN_NULL();
	getTypeInputInfo(rettype, &typinput, &typioparam);
	return OidInputFunctionCall(typinput, call.values[0], typioparam, -1);
}
