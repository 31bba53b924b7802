/*-------------------------------------------------------------------------
 *
 * forward.c
 *		The sessions of other nodes: the directory of nodes, and the calls
 *		run on them over libpq.
 *
 * A node of a cluster names every other node in the table
 * kill_session_nodes: node ID -> foreign server.  A call for another
 * node's session connects to that server and runs the same SQL there,
 * where the node makes its own privilege checks.  Each boundary it crosses
 * is guarded as postgres_fdw and dblink guard theirs:
 *
 * - The server is one that the directory's owner chose: it belongs to a
 *	 superuser or to the directory's owner.
 * - Options come from their place, whatever the wrapper (dblink's rule):
 *	 the user and secrets only from the calling role's user mapping,
 *	 everything else only from the server; a non-superuser's mapping must
 *	 hold a password that the node asks for, unless postgres_fdw's own
 *	 validator (which makes it superuser-only) let password_required be
 *	 false.
 * - Before anything else runs there, the node says who it is: its
 *	 kill_session.node_id, its system_identifier, its database, and the OID
 *	 of the object the call runs, which must be this extension's (a
 *	 physical standby has the same OIDs).  The same query sets search_path
 *	 to pg_catalog and passes the caller's kill_session.wait_timeout.  On
 *	 whose behalf the call comes (kill_session.origin), for the node's LOG
 *	 line and DETAIL, is given once, in the startup packet of the
 *	 connection: the node lets nothing change it afterwards.  On a
 *	 connection just opened, and for a read, the
 *	 question, the node's own check of the same facts and the call go in
 *	 one pipeline: one round trip, and a node that is not the one asked
 *	 for stops at its own check, before the call is parsed.  An action on
 *	 a kept connection waits for the answer before it sends the call, so
 *	 that a link that died while the connection was idle costs nothing
 *	 but an error that says nothing was done.  This check guards against
 *	 mistakes; TLS with verify-full guards against a network attacker.
 * - Every call is bounded: kill_session.node_timeout to resolve, connect
 *	 and be checked, that plus kill_session.wait_timeout to answer, in 64
 *	 bits.  Host names are resolved by resolve.c, so that a slow resolver
 *	 neither outlasts the bound nor blocks a cancel.
 *
 * Many nodes are called at once: one wait loop drives every connection.
 * A node's NOTICEs and WARNINGs are kept as libpq hands them over and
 * raised, in order, once libpq has returned; its error is kept, with its
 * SQLSTATE where it means the same here, for the caller to raise; both
 * with a CONTEXT naming the node.
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

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
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
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "kill_session.h"

/* kill_session.node_timeout, in milliseconds */
static int	ks_node_timeout = 3000;

/* Where a call stands. */
typedef enum KsCallState
{
	KS_CALL_NEW,
	KS_CALL_KEPT,				/* has a kept connection, not yet checked */
	KS_CALL_RESOLVING,			/* its host names being resolved */
	KS_CALL_CONNECTING,
	KS_CALL_CHECKING,			/* asked who the node is */
	KS_CALL_GUARDING,			/* pipelined: the node checks itself */
	KS_CALL_RUNNING,			/* its SQL runs there */
	KS_CALL_SYNCING,			/* pipelined: answered, the pipeline to end */
	KS_CALL_DONE				/* answered or failed */
} KsCallState;

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

/* How long a node may take to answer a call once checked, in 64 bits. */
static int64
ks_answer_timeout(void)
{
	return (int64) ks_node_timeout + ks_wait_timeout_ms();
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
	if (SPI_execute_with_args(psprintf("SELECT server_name FROM %s WHERE node_id OPERATOR(pg_catalog.=) $1",
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
	if (SPI_execute(psprintf("SELECT node_id, server_name FROM %s WHERE node_id OPERATOR(pg_catalog.<>) %d ORDER BY node_id",
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
		calls[i].fn = fn;
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
	ks_resolve_stop(&call->resolver);
	ks_connection_close(call->conn);
	call->conn = NULL;
	call->failed = true;
	call->sqlerrcode = sqlerrcode;
	call->message = message;
	call->detail = detail;
	call->hint = hint;
	call->state = KS_CALL_DONE;
}

/*
 * The connection to the call's node is lost (why: detail).  Before the
 * call's SQL was sent nothing ran there: 08006.  After, an action may have
 * been done there, or not: 08007, the outcome is unknown, never a false.
 * A read (no action) is 08006 either way.
 */
static void
ks_call_lost(KsNodeCall *call, char *detail)
{
	if (call->sent && call->action != NULL)
		ks_call_fail(call, ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN,
					 psprintf("the outcome on node %d is unknown", call->node),
					 psprintf("The connection to node %d was lost after the call was sent: %s",
							  call->node, detail),
					 psprintf("cluster_processlist shows whether the session is still there; node %d's log says what was done.",
							  call->node));
	else
		ks_call_fail(call, ERRCODE_CONNECTION_FAILURE,
					 psprintf("lost the connection to node %d", call->node),
					 detail, NULL);
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

/*
 * The node reported an error: keep it as it sent it.  But a FATAL, or an
 * operator intervention of class 57P0 (the node shutting down, the
 * forwarding session ended), ended the node's session, not the caller's:
 * here it is 08006, with the node's own words in the DETAIL, since drivers
 * and poolers take 57P0x as the end of their own connection.
 */
static void
ks_call_fail_result(KsNodeCall *call, const PGresult *res)
{
	char	   *message = ks_result_field(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (message == NULL)
		message = pchomp(PQerrorMessage(call->conn));
	if ((severity != NULL &&
		 (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0)) ||
		(state != NULL && strncmp(state, "57P0", 4) == 0))
	{
		ks_call_lost(call, psprintf("the node said: %s: %s%s%s",
									severity ? severity : "ERROR",
									state ? state : "", state ? ": " : "",
									message));
		return;
	}
	ks_call_fail(call, ks_result_sqlstate(res), message,
				 ks_result_field(res, PG_DIAG_MESSAGE_DETAIL),
				 ks_result_field(res, PG_DIAG_MESSAGE_HINT));
}

/* A node's NOTICE or WARNING, kept until libpq has returned. */
typedef struct KsNotice
{
	struct KsNotice *next;
	int			elevel;
	int			sqlerrcode;
	char	   *message;
	char	   *detail;
	char	   *hint;
} KsNotice;

/* A copy in the call's memory, or NULL if there is no memory for it. */
static char *
ks_notice_strdup(KsNodeCall *call, const char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = MemoryContextAllocExtended(call->context, strlen(s) + 1,
									  MCXT_ALLOC_NO_OOM);
	if (copy != NULL)
		strcpy(copy, s);
	return copy;
}

/*
 * libpq's notice receiver: keep a node's NOTICE or WARNING in the call, in
 * the order it came, for ks_call_raise_notices().  It runs inside libpq
 * (PQconsumeInput, PQgetResult, PQconnectPoll), which an ereport() here
 * could leave by longjmp in the middle of its work; so nothing here can
 * raise an error, not even for memory: a notice that finds none is lost.
 */
static void
ks_notice_receiver(void *arg, const PGresult *res)
{
	KsNodeCall *call = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	KsNotice   *notice;
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
	notice = MemoryContextAllocExtended(call->context, sizeof(KsNotice),
										MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	if (notice == NULL)
		return;
	notice->elevel = elevel;
	notice->sqlerrcode = ks_result_sqlstate(res);
	notice->message = ks_notice_strdup(call, message);
	notice->detail = ks_notice_strdup(call,
									  PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
	notice->hint = ks_notice_strdup(call,
									PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
	if (notice->message == NULL)
		return;
	if (call->last_notice != NULL)
		call->last_notice->next = notice;
	else
		call->notices = notice;
	call->last_notice = notice;
}

/* Raise the call's kept notices, in order, with the node named. */
static void
ks_call_raise_notices(KsNodeCall *call)
{
	while (call->notices != NULL)
	{
		KsNotice   *notice = call->notices;

		call->notices = notice->next;
		if (call->notices == NULL)
			call->last_notice = NULL;
		ereport(notice->elevel,
				(errcode(notice->sqlerrcode),
				 errmsg_internal("%s", notice->message),
				 notice->detail ? errdetail_internal("%s", notice->detail) : 0,
				 notice->hint ? errhint("%s", notice->hint) : 0,
				 errcontext("node %d (foreign server \"%s\")",
							call->node, call->server)));
	}
}

/*
 * Whether fdw's validator is postgres_fdw's own, the one that lets only a
 * superuser set password_required in a user mapping: a C function
 * postgres_fdw_validator of $libdir/postgres_fdw (only a superuser can
 * make a C function).
 */
static bool
ks_postgres_fdw_validator(const ForeignDataWrapper *fdw)
{
	HeapTuple	tuple;
	bool		is_it = false;

	if (!OidIsValid(fdw->fdwvalidator))
		return false;
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fdw->fdwvalidator));
	if (!HeapTupleIsValid(tuple))
		return false;
	if (((Form_pg_proc) GETSTRUCT(tuple))->prolang == ClanguageId)
	{
		bool		isnull_src;
		bool		isnull_bin;
		Datum		src = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_prosrc,
										  &isnull_src);
		Datum		bin = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_probin,
										  &isnull_bin);

		is_it = !isnull_src && !isnull_bin &&
			strcmp(TextDatumGetCString(src), "postgres_fdw_validator") == 0 &&
			strcmp(TextDatumGetCString(bin), "$libdir/postgres_fdw") == 0;
	}
	ReleaseSysCache(tuple);
	return is_it;
}

/*
 * Whether a user mapping's password_required is on.  It is off only where
 * postgres_fdw's validator checked it; any other wrapper's mapping could
 * have been written by the role that uses it.
 */
static bool
ks_password_required(const ForeignDataWrapper *fdw, const UserMapping *user)
{
	ListCell   *cell;

	if (!ks_postgres_fdw_validator(fdw))
		return true;
	foreach(cell, user->options)
	{
		DefElem    *def = lfirst(cell);

		if (strcmp(def->defname, "password_required") == 0)
			return defGetBoolean(def);
	}
	return true;
}

/* Where a connection option may come from. */
typedef enum KsOptionPlace
{
	KS_OPTION_NOT_LIBPQ,		/* not libpq's, or one the call sets itself:
								 * left alone */
	KS_OPTION_SERVER,			/* only from the server */
	KS_OPTION_MAPPING,			/* only from the user mapping */
	KS_OPTION_SERVER_OR_SUPERUSER	/* from the server, or from a superuser's
									 * user mapping */
} KsOptionPlace;

/*
 * Where keyword may come from: dblink's rule, whatever the wrapper.  The
 * user and every secret libpq hides (password, sslpassword...) belong to
 * a user mapping; the client certificate, its key and the key's password
 * name files of this server, which only a superuser may choose for
 * herself; everything else (host, port, dbname, sslmode, passfile...)
 * belongs to the server, so that a role cannot redirect her own calls.
 */
static KsOptionPlace
ks_option_place(const PQconninfoOption *options, const char *keyword)
{
	const PQconninfoOption *opt;

	if (strcmp(keyword, "fallback_application_name") == 0 ||
		strcmp(keyword, "client_encoding") == 0)
		return KS_OPTION_NOT_LIBPQ;
	if (strcmp(keyword, "sslcert") == 0 || strcmp(keyword, "sslkey") == 0 ||
		strcmp(keyword, "sslpassword") == 0)
		return KS_OPTION_SERVER_OR_SUPERUSER;
	for (opt = options; opt->keyword != NULL; opt++)
	{
		if (strcmp(opt->keyword, keyword) != 0)
			continue;
		if (strchr(opt->dispchar, 'D') != NULL)
			return KS_OPTION_NOT_LIBPQ;
		if (strcmp(keyword, "user") == 0 || strchr(opt->dispchar, '*') != NULL)
			return KS_OPTION_MAPPING;
		return KS_OPTION_SERVER;
	}
	return KS_OPTION_NOT_LIBPQ;
}

/* The owner of the directory, kill_session_nodes in fn's schema. */
static Oid
ks_directory_owner(Oid fn)
{
	Oid			relid = get_relname_relid("kill_session_nodes",
										  get_func_namespace(fn));
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Add the call's origin to its connection's startup options, after the
 * server's own "options" if it has any: -c kill_session.origin=..., with a
 * backslash before every space and backslash, as the server splits them.
 * The node takes it only there (PGC_BACKEND), once for the connection's
 * life.  There is room for one more option.
 */
static void
ks_call_add_origin(KsNodeCall *call)
{
	StringInfoData buf;
	const char *p;
	int			i;

	initStringInfo(&buf);
	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], "options") == 0)
			appendStringInfo(&buf, "%s ", call->options[i]);
	}
	appendStringInfoString(&buf, "-c kill_session.origin=");
	for (p = call->origin; *p != '\0'; p++)
	{
		if (*p == '\\' || isspace((unsigned char) *p))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], "options") == 0)
		{
			call->options[i] = buf.data;
			return;
		}
	}
	call->keywords[i] = "options";
	call->options[i] = buf.data;
	call->keywords[i + 1] = NULL;
	call->options[i + 1] = NULL;
}

/*
 * The libpq options of a call from server and user mapping, each from its
 * place; false, with the call failed, if one is out of place.
 */
static bool
ks_call_options(KsNodeCall *call, const ForeignServer *server,
				const UserMapping *user, bool *has_password)
{
	static PQconninfoOption *libpq_options = NULL;
	bool		superuser_mapping = OidIsValid(user->userid) &&
		superuser_arg(user->userid);
	int			nopts = list_length(server->options) + list_length(user->options);
	int			n = 0;
	ListCell   *cell;

	if (libpq_options == NULL)
	{
		libpq_options = PQconndefaults();
		if (libpq_options == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	call->keywords = palloc(sizeof(char *) * (nopts + 5));
	call->options = palloc(sizeof(char *) * (nopts + 5));
	*has_password = false;
	foreach(cell, list_concat_copy(server->options, user->options))
	{
		DefElem    *def = lfirst(cell);
		bool		in_mapping = foreach_current_index(cell) >=
			list_length(server->options);
		KsOptionPlace place = ks_option_place(libpq_options, def->defname);

		if (place == KS_OPTION_NOT_LIBPQ)
			continue;
		if (in_mapping ? (place == KS_OPTION_SERVER ||
						  (place == KS_OPTION_SERVER_OR_SUPERUSER && !superuser_mapping)) :
			place == KS_OPTION_MAPPING)
		{
			ks_call_fail(call, ERRCODE_FDW_INVALID_OPTION_NAME,
						 in_mapping ?
						 psprintf("option \"%s\" is not allowed in a user mapping of node %d's foreign server \"%s\"",
								  def->defname, call->node, server->servername) :
						 psprintf("option \"%s\" is not allowed in node %d's foreign server \"%s\"",
								  def->defname, call->node, server->servername),
						 pstrdup("A user mapping gives the user, the password and other secrets; "
								 "sslcert, sslkey and sslpassword only in a superuser's mapping. "
								 "The server gives everything else."),
						 in_mapping ?
						 psprintf("Set it in foreign server \"%s\".", server->servername) :
						 psprintf("Set it in the user mappings of foreign server \"%s\".",
								  server->servername));
			return false;
		}
		call->keywords[n] = def->defname;
		call->options[n] = defGetString(def);
		if (strcmp(def->defname, "password") == 0 && call->options[n][0] != '\0')
			*has_password = true;
		n++;
	}
	call->keywords[n] = "fallback_application_name";
	call->options[n++] = "kill_session";
	call->keywords[n] = "client_encoding";
	call->options[n++] = GetDatabaseEncodingName();
	call->keywords[n] = NULL;
	call->options[n] = NULL;
	ks_call_add_origin(call);
	return true;
}

/* The value of a connection option, or NULL. */
static const char *
ks_call_option(const KsNodeCall *call, const char *keyword)
{
	int			i;

	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], keyword) == 0)
			return call->options[i];
	}
	return NULL;
}

/* Add a connection option (there is room for one more). */
static void
ks_call_add_option(KsNodeCall *call, const char *keyword, const char *value)
{
	int			i;

	for (i = 0; call->keywords[i] != NULL; i++)
		;
	call->keywords[i] = keyword;
	call->options[i] = value;
	call->keywords[i + 1] = NULL;
	call->options[i + 1] = NULL;
}

/* Set a connection option that the call has. */
static void
ks_call_set_option(KsNodeCall *call, const char *keyword, const char *value)
{
	int			i;

	for (i = 0; call->keywords[i] != NULL; i++)
	{
		if (strcmp(call->keywords[i], keyword) == 0)
			call->options[i] = value;
	}
}

static void ks_call_open(KsNodeCall *call);

/*
 * Start the call to its node's foreign server: check the server and the
 * calling role's user mapping, log what is asked of the node, and start
 * resolving its host names or connecting.  A refusal here fails the call.
 */
static void
ks_call_start(KsNodeCall *call)
{
	ForeignServer *server;
	ForeignDataWrapper *fdw;
	UserMapping *user;
	Oid			userid = GetUserId();
	Oid			owner;
	bool		has_password;

	call->state = KS_CALL_DONE;
	call->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 (int64) ks_node_timeout);
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

	/* Who is called is who the directory's owner chose. */
	owner = ks_directory_owner(call->fn);
	if (server->owner != owner && !superuser_arg(server->owner))
	{
		ks_call_fail(call, ERRCODE_INSUFFICIENT_PRIVILEGE,
					 psprintf("foreign server \"%s\" of node %d is owned by role \"%s\"",
							  server->servername, call->node,
							  GetUserNameFromId(server->owner, false)),
					 psprintf("A node's server must be owned by a superuser or by the owner of kill_session_nodes, role \"%s\".",
							  GetUserNameFromId(owner, false)),
					 psprintf("ALTER SERVER %s OWNER TO %s;",
							  quote_identifier(server->servername),
							  quote_identifier(GetUserNameFromId(owner, false))));
		return;
	}

	/*
	 * A wrapper without a validator lets anybody with USAGE on it put any
	 * option anywhere.
	 */
	fdw = GetForeignDataWrapper(server->fdwid);
	if (!OidIsValid(fdw->fdwvalidator))
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
	call->origin = ks_my_origin();
	if (!ks_call_options(call, server, user, &has_password))
		return;

	/*
	 * A non-superuser must not connect as this server's operating system
	 * user.
	 */
	call->password_required = !superuser_arg(userid) &&
		ks_password_required(fdw, user);
	if (call->password_required && !has_password)
	{
		ks_call_fail(call, ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED,
					 pstrdup("password is required"),
					 pstrdup("Non-superusers must provide a password in the user mapping."),
					 NULL);
		return;
	}

	/* The caller's node says what it asks, before it asks. */
	if (call->action != NULL)
		ereport(LOG,
				(errmsg("session " INT64_FORMAT " (pid %d, role \"%s\") of node %d forwards to node %d (foreign server \"%s\"): %s",
						ks_global_id(ks_my_session_id()), MyProcPid,
						GetUserNameFromId(userid, false), ks_node_id(),
						call->node, server->servername, call->action)));

	/* A connection kept from an earlier call of this role, if alive. */
	call->serverid = server->serverid;
	call->userid = userid;
	call->umid = user->umid;
	call->conn = ks_connection_take(call->serverid, userid, user->umid,
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
static void
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

/*
 * Connecting failed.  If the node refused with an error of its own (too
 * many connections, a database being shut down...), that is the SQLSTATE
 * here too, found in libpq's message as PQERRORS_VERBOSE writes it,
 * "SEVERITY:  SQLSTATE: text"; otherwise 08001.  The DETAIL is libpq's
 * message without its LOCATION lines.
 */
static void
ks_call_connect_failed(KsNodeCall *call)
{
	const char *message = PQerrorMessage(call->conn);
	const char *p;
	int			sqlstate = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
	StringInfoData detail;

	for (p = strstr(message, ":  "); p != NULL; p = strstr(p + 1, ":  "))
	{
		const char *s = p + 3;
		int			i;

		for (i = 0; i < 5 && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')); i++)
			;
		if (i == 5 && s[5] == ':')
		{
			sqlstate = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
			break;
		}
	}
	initStringInfo(&detail);
	for (p = message; *p != '\0';)
	{
		const char *eol = strchr(p, '\n');
		int			len = eol ? (int) (eol - p) : (int) strlen(p);

		if (strncmp(p, "LOCATION:", 9) != 0)
			appendStringInfo(&detail, "%s%.*s", detail.len > 0 ? "\n" : "", len, p);
		p += len + (eol ? 1 : 0);
	}
	ks_call_fail(call, sqlstate,
				 psprintf("could not connect to node %d", call->node),
				 detail.data, NULL);
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
												 ks_answer_timeout());
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
static void
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
	params[2] = psprintf("%d", ks_wait_timeout_ms());
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
static void
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

/* Free an answer kept until the end of its memory context. */
static void
ks_free_result(void *arg)
{
	PQclear((PGresult *) arg);
}

/*
 * The node's answer to the call's SQL: kept as libpq made it, until the
 * caller's memory context goes, however that ends.
 */
static void
ks_call_answered(KsNodeCall *call, PGresult *res)
{
	MemoryContextCallback *cb;

	cb = MemoryContextAlloc(call->context, sizeof(MemoryContextCallback));
	cb->func = ks_free_result;
	cb->arg = res;
	MemoryContextRegisterResetCallback(call->context, cb);
	call->result = res;
	call->nrows = PQntuples(res);
	call->ncols = PQnfields(res);
}

/* The answer's value at row, col, as text; NULL for NULL. */
const char *
ks_call_value(const KsNodeCall *call, int row, int col)
{
	if (PQgetisnull(call->result, row, col))
		return NULL;
	return PQgetvalue(call->result, row, col);
}

/*
 * The query in flight is over (PQgetResult gave NULL): move on to what
 * comes next.
 */
static void
ks_call_query_over(KsNodeCall *call)
{
	switch (call->state)
	{
		case KS_CALL_CHECKING:
			call->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 ks_answer_timeout());
			if (call->pipelined)
				call->state = KS_CALL_GUARDING;
			else
				ks_call_send(call, call->sql, call->nparams, call->params,
							 KS_CALL_RUNNING);
			break;
		case KS_CALL_GUARDING:
			call->state = KS_CALL_RUNNING;
			break;
		case KS_CALL_RUNNING:
			call->state = call->pipelined ? KS_CALL_SYNCING : KS_CALL_DONE;
			break;
		default:
			break;
	}
}

/* Take what the node has sent, as far as it goes without waiting. */
static void
ks_call_read(KsNodeCall *call)
{
	if (!PQconsumeInput(call->conn))
	{
		ks_call_lost(call, pchomp(PQerrorMessage(call->conn)));
		return;
	}
	while (call->state != KS_CALL_DONE && !PQisBusy(call->conn))
	{
		PGresult   *res = PQgetResult(call->conn);

		if (res == NULL)
		{
			ks_call_query_over(call);
			if (!call->pipelined)
				return;
			continue;
		}
		switch (PQresultStatus(res))
		{
			case PGRES_TUPLES_OK:
			case PGRES_COMMAND_OK:
				if (call->state == KS_CALL_CHECKING)
					ks_call_checked(call, res);
				else if (call->state == KS_CALL_RUNNING && call->result == NULL)
				{
					ks_call_answered(call, res);
					res = NULL;
				}
				break;
			case PGRES_PIPELINE_SYNC:
				if (call->state == KS_CALL_SYNCING && PQexitPipelineMode(call->conn))
					call->state = KS_CALL_DONE;
				else
					ks_call_fail(call, ERRCODE_PROTOCOL_VIOLATION,
								 psprintf("node %d ended the call out of turn", call->node),
								 NULL, NULL);
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
	if (call->state == KS_CALL_KEPT)
		ks_call_connected(call);
	if (call->state == KS_CALL_RESOLVING)
	{
		char	   *host;
		char	   *hostaddr;
		char	   *port;
		char	   *error;

		switch (ks_resolve_read(&call->resolver, ks_call_option(call, "host"),
								ks_call_option(call, "port"),
								&host, &hostaddr, &port, &error))
		{
			case KS_RESOLVE_MORE:
				*events = WL_SOCKET_READABLE;
				return;
			case KS_RESOLVE_FAILED:
				ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
							 psprintf("could not connect to node %d", call->node),
							 error, NULL);
				return;
			case KS_RESOLVE_DONE:
				/* Every address, each with its name and port. */
				ks_call_set_option(call, "host", host);
				if (port != NULL)
					ks_call_set_option(call, "port", port);
				ks_call_add_option(call, "hostaddr", hostaddr);
				call->state = KS_CALL_NEW;
				break;
		}
	}
	if (call->state == KS_CALL_NEW)
	{
		ks_call_connect(call);
		if (call->state == KS_CALL_DONE)
			return;
		*events = WL_SOCKET_WRITEABLE;
		return;
	}
	if (call->state == KS_CALL_CONNECTING)
	{
		call->poll = PQconnectPoll(call->conn);
		if (call->poll == PGRES_POLLING_FAILED)
		{
			ks_call_connect_failed(call);
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
			ks_call_lost(call, pchomp(PQerrorMessage(call->conn)));
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
	return until_sent && call->sent && !call->flushing;
}

/*
 * Drive every call until each is settled: sent (until_sent) or done.  One
 * wait serves every socket, the latch (for interrupts) and the postmaster's
 * death; a call past its deadline fails.  A node's notices are raised after
 * each step, once libpq has returned.
 *
 * The wait's set is made anew for each wait, as a call's socket may change
 * between two (the resolver's pipe, then the connection's, libpq trying the
 * next address, a kept connection replaced) and epoll would not see a new
 * socket that got the number of a closed one.  Its epoll descriptor is
 * freed after the wait, and on an error or cancel anywhere in the loop.
 */
static void
ks_drive(KsNodeCall *calls, int n, bool until_sent)
{
	uint32	   *events = palloc0(sizeof(uint32) * Max(n, 1));
	bool	   *ready = palloc(sizeof(bool) * Max(n, 1));
	WaitEventSet *volatile set = NULL;
	int			i;

	/* Every call first moves on as far as it can without waiting. */
	for (i = 0; i < n; i++)
		ready[i] = true;
	PG_TRY();
	{
		for (;;)
		{
			TimestampTz now;
			TimestampTz next_deadline = 0;
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
				if (now >= call->deadline && call->sent && call->action != NULL)
				{
					ks_call_fail(call, ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN,
								 psprintf("the outcome on node %d is unknown", call->node),
								 psprintf("Node %d did not answer the call within kill_session.node_timeout plus kill_session.wait_timeout (" INT64_FORMAT " ms).",
										  call->node, ks_answer_timeout()),
								 psprintf("cluster_processlist shows whether the session is still there; node %d's log says what was done.",
										  call->node));
					continue;
				}
				if (now >= call->deadline && call->sent)
				{
					ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
								 psprintf("node %d did not answer in time", call->node),
								 psprintf("It did not answer within kill_session.node_timeout plus kill_session.wait_timeout (" INT64_FORMAT " ms).",
										  ks_answer_timeout()),
								 NULL);
					continue;
				}
				if (now >= call->deadline)
				{
					ks_call_fail(call, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
								 psprintf("could not reach node %d", call->node),
								 psprintf("It did not connect and say who it is within kill_session.node_timeout (%d ms).",
										  ks_node_timeout),
								 NULL);
					continue;
				}
				if (ready[i])
				{
					ks_call_step(call, &events[i]);
					ready[i] = false;
					ks_call_raise_notices(call);
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
					AddWaitEventToSet(set, events[i],
									  calls[i].state == KS_CALL_RESOLVING ?
									  calls[i].resolver.fd : PQsocket(calls[i].conn),
									  NULL, &ready[i]);
			}
			/* A wait takes at most INT_MAX ms; a later deadline takes more. */
			timeout = Min(Max(TimestampDifferenceMilliseconds(now, next_deadline), 1),
						  INT_MAX);
			nevents = WaitEventSetWait(set, timeout, occurred, lengthof(occurred),
									   PG_WAIT_EXTENSION);
			FreeWaitEventSet(set);
			set = NULL;
			for (i = 0; i < nevents; i++)
			{
				if (occurred[i].events & WL_LATCH_SET)
					ResetLatch(MyLatch);
				else if (occurred[i].user_data != NULL)
					*(bool *) occurred[i].user_data = true;
			}
		}
	}
	PG_FINALLY();
	{
		if (set != NULL)
			FreeWaitEventSet(set);
	}
	PG_END_TRY();
	/* A call that failed on its deadline may have had notices before. */
	for (i = 0; i < n; i++)
		ks_call_raise_notices(&calls[i]);
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

	/* A connection is kept only after an answer in full. */
	for (i = 0; i < n; i++)
	{
		ks_resolve_stop(&calls[i].resolver);
		ks_connection_give_back(calls[i].serverid, calls[i].userid,
								calls[i].umid, calls[i].origin, calls[i].conn,
								calls[i].state == KS_CALL_DONE && !calls[i].failed);
		calls[i].conn = NULL;
	}
}

/*
 * A cluster list, for the SQL function in fcinfo: the extension's view of
 * that name read on every node of the directory (its columns, ncols of
 * them), each row after its node's number, and this server's own rows,
 * put by list_local while the nodes answer.  A node that cannot be read,
 * or that answers with other columns, gives a WARNING and no rows.  A row
 * that row_ok refuses (it names a session whose ID does not carry the
 * node) is left out with a WARNING; row_ok also hides what the caller may
 * not see of another role's session, whatever the node showed its mapped
 * role.
 */
void
ks_cluster_list(FunctionCallInfo fcinfo, const char *view, const char *columns,
				int ncols, void (*list_local) (ReturnSetInfo *rsinfo, bool with_node),
				KsNodeRowCheck row_ok)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			fn = fcinfo->flinfo->fn_oid;
	bool		read_all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	AttInMetadata *attinmeta = TupleDescGetAttInMetadata(rsinfo->setDesc);
	Datum	   *values = palloc(sizeof(Datum) * (ncols + 1));
	bool	   *nulls = palloc(sizeof(bool) * (ncols + 1));
	const char **row = palloc(sizeof(char *) * ncols);
	KsNodeCall *calls;
	int			ncalls;
	char	   *sql;
	int			c;

	Assert(rsinfo->setDesc->natts == ncols + 1);
	sql = psprintf("SELECT %s FROM %s", columns, ks_extension_object(fn, view));
	calls = ks_directory_calls(fn, &ncalls);
	for (c = 0; c < ncalls; c++)
	{
		calls[c].sql = sql;
		calls[c].object = get_relname_relid(view, get_func_namespace(fn));
	}
	PG_TRY();
	{
		ks_nodes_send(calls, ncalls);
		list_local(rsinfo, true);
		ks_nodes_receive(calls, ncalls);
	}
	PG_FINALLY();
	{
		ks_nodes_close(calls, ncalls);
	}
	PG_END_TRY();

	for (c = 0; c < ncalls; c++)
	{
		KsNodeCall *call = &calls[c];
		int			dropped = 0;
		int			r;
		int			i;

		if (call->failed)
		{
			ks_node_report(call, WARNING);
			continue;
		}
		if (call->ncols != ncols)
		{
			ereport(WARNING,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("node %d listed %d columns instead of %d",
							call->node, call->ncols, ncols),
					 errcontext("node %d (foreign server \"%s\")",
								call->node, call->server)));
			continue;
		}
		values[0] = Int32GetDatum(call->node);
		nulls[0] = false;
		for (r = 0; r < call->nrows; r++)
		{
			for (i = 0; i < ncols; i++)
				row[i] = ks_call_value(call, r, i);
			if (!row_ok(call->node, row, read_all_stats))
			{
				dropped++;
				continue;
			}
			for (i = 0; i < ncols; i++)
			{
				nulls[i + 1] = row[i] == NULL;
				values[i + 1] = nulls[i + 1] ? (Datum) 0 :
					InputFunctionCall(&attinmeta->attinfuncs[i + 1],
									  unconstify(char *, row[i]),
									  attinmeta->attioparams[i + 1],
									  attinmeta->atttypmods[i + 1]);
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		if (dropped > 0)
			ereport(WARNING,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg_plural("node %d listed %d session whose ID does not carry that node",
								   "node %d listed %d sessions whose IDs do not carry that node",
								   dropped, call->node, dropped),
					 errdetail("Those rows are left out."),
					 errcontext("node %d (foreign server \"%s\")",
								call->node, call->server)));
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
 * session string at argno, which becomes session (the ID, and a SQL_ID if
 * one was given).  what is what it does
 * ("kill session"), for the LOG line.  Returns its result; its error is
 * raised here.
 */
Datum
ks_forward_call(FunctionCallInfo fcinfo, int argno, int64 id,
				const char *session, const char *server, const char *what)
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
			params[i] = session;
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
	call.fn = fn;
	call.object = fn;
	call.action = psprintf("%s " INT64_FORMAT, what, id);
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
	if (ks_call_value(&call, 0, 0) == NULL)
		PG_RETURN_NULL();
	getTypeInputInfo(rettype, &typinput, &typioparam);
	return OidInputFunctionCall(typinput, unconstify(char *, ks_call_value(&call, 0, 0)),
								typioparam, -1);
}
