/*-------------------------------------------------------------------------
 *
 * forward.c
 *		The sessions of other nodes: the directory of nodes, the calls
 *		forwarded to them, and the lists of every node.
 *
 * A node of a cluster names every other node in the table
 * kill_session_nodes: node ID -> foreign server.  An action on another
 * node's session runs the same SQL function there (ks_forward_call); a
 * cluster list reads the same view on every node of the directory and
 * adds this server's own rows (ks_cluster_list, the one helper behind
 * every list of all nodes).  A node's error is raised here with a CONTEXT
 * naming the node; a list gives a WARNING for a node that cannot be read.
 *
 * The calls themselves are the forwarding files' below this one:
 * node_drive.c drives them all at once, node_call.c takes each call's
 * steps, node_option.c says whom a call may trust and where each
 * connection option comes from, node_answer.c keeps what comes back, and
 * connection.c keeps connections between calls.  They are the only files
 * that use libpq.
 *
 * This file owns the directory and what a call is for.  It must not
 * connect, wait or read an answer's bytes itself, and it reads no setting
 * of the actions: the caller's wait travels in the call.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  forward.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/tuplestore.h"

#include "kill_session.h"

/*
 * An object of the extension, by name, qualified with its schema: the
 * schema of fn, a function of the extension; or with no fn, the schema
 * pg_extension names.
 */
char *
ks_extension_object(Oid fn, const char *name)
{
	Oid			nsp = InvalidOid;

	if (OidIsValid(fn))
		nsp = get_func_namespace(fn);
	else
	{
		Oid			ext = get_extension_oid("kill_session", false);
		Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tuple;

		ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(ext));
		scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
		tuple = systable_getnext(scan);
		if (HeapTupleIsValid(tuple))
			nsp = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	return quote_qualified_identifier(get_namespace_name(nsp), name);
}

/*
 * The foreign server of node in the directory, or NULL; fn is a function of
 * the extension, whose schema holds the directory (or InvalidOid: see
 * ks_extension_object()).
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

/*
 * Every node of the directory but this one, with its server and the
 * caller's wait; *n is set.
 */
static KsNodeCall *
ks_directory_calls(Oid fn, int wait_ms, int *n)
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
		calls[i].wait_ms = wait_ms;
		calls[i].server = MemoryContextStrdup(caller,
											  SPI_getvalue(tuple, desc, 2));
	}
	*n = (int) SPI_processed;
	SPI_finish();
	return calls;
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
 * role.  wait_ms is the caller's kill_session.wait_timeout, passed on.
 */
void
ks_cluster_list(FunctionCallInfo fcinfo, const char *view, const char *columns,
				int ncols, void (*list_local) (ReturnSetInfo *rsinfo, bool with_node),
				KsNodeRowCheck row_ok, int wait_ms)
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
	calls = ks_directory_calls(fn, wait_ms, &ncalls);
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

/*
 * Run this SQL function's call on the node that holds session id, whose
 * foreign server is server: the same function, the same arguments but the
 * session string at argno, which becomes session (the ID, and a SQL_ID if
 * one was given).  what is what it does
 * ("kill session"), for the LOG line; wait_ms the caller's
 * kill_session.wait_timeout, passed on.  Returns its result; its error is
 * raised here.
 */
/*
 * Run the call there; rows: as SELECT * FROM the function, for a function
 * that returns a set.  call holds the answer.
 */
static void
ks_forward_run(FunctionCallInfo fcinfo, int argno, int64 id,
			   const char *session, const char *server, const char *what,
			   int wait_ms, bool rows, KsNodeCall *call)
{
	Oid			fn = fcinfo->flinfo->fn_oid;
	Oid		   *argtypes;
	int			nargs;
	StringInfoData sql;
	const char **params;
	int			i;

	/*
	 * Every argument, NULL ones too, each with its type: the call names the
	 * function's whole signature, so that it resolves to the very function
	 * the node's check found, and to no shorter one beside it in its schema.
	 */
	(void) get_func_signature(fn, &argtypes, &nargs);
	params = palloc(sizeof(char *) * Max(nargs, 1));
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s%s(", rows ? "* FROM " : "",
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

	call->node = ks_id_node(id);
	call->server = pstrdup(server);
	call->fn = fn;
	call->wait_ms = wait_ms;
	call->object = fn;
	call->action = psprintf("%s " INT64_FORMAT, what, id);
	call->sql = sql.data;
	call->nparams = nargs;
	call->params = params;
	PG_TRY();
	{
		ks_nodes_send(call, 1);
		ks_nodes_receive(call, 1);
	}
	PG_FINALLY();
	{
		ks_nodes_close(call, 1);
	}
	PG_END_TRY();

	if (call->failed)
		ks_node_report(call, ERROR);
}

/* The same for a function that returns a set: call holds its rows. */
void
ks_forward_rows(FunctionCallInfo fcinfo, int argno, int64 id,
				const char *session, const char *server, const char *what,
				int wait_ms, KsNodeCall *call)
{
	memset(call, 0, sizeof(KsNodeCall));
	ks_forward_run(fcinfo, argno, id, session, server, what, wait_ms, true,
				   call);
}

Datum
ks_forward_call(FunctionCallInfo fcinfo, int argno, int64 id,
				const char *session, const char *server, const char *what,
				int wait_ms)
{
	KsNodeCall	call = {0};
	Oid			rettype = get_func_rettype(fcinfo->flinfo->fn_oid);
	Oid			typinput;
	Oid			typioparam;

	ks_forward_run(fcinfo, argno, id, session, server, what, wait_ms, false,
				   &call);
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
