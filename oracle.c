/*-------------------------------------------------------------------------
 *
 * oracle.c
 *		The Oracle-facing touches: SHOW PROCESSLIST, and the HINT that
 *		turns ALTER SYSTEM KILL SESSION into its PostgreSQL equivalent.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  oracle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "commands/prepare.h"
#include "mb/pg_wchar.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"

#include "kill_session.h"
#include "sql_scan.h"

/*
 * The session-level prepared statement that answers SHOW PROCESSLIST.  It
 * is listed in pg_prepared_statements; DEALLOCATE removes it and the next
 * SHOW PROCESSLIST makes it again.
 */
#define KS_SHOW_STATEMENT	"kill_session_show_processlist"

/* The start of its text; the schema-qualified view and ORDER BY follow. */
#define KS_SHOW_SELECT \
	"SELECT id AS \"ID\", \"user\" AS \"USER\", host AS \"HOST\", " \
	"db AS \"DB\", command AS \"COMMAND\", \"time\" AS \"TIME\", " \
	"state AS \"STATE\", info AS \"INFO\" FROM "

static Oid
ks_extension_schema(Oid extoid)
{
#if PG_VERSION_NUM >= 160000
	return get_extension_schema(extoid);
#else
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			result = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		result = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
#endif
}

/*
 * (Re)create the prepared statement that SHOW PROCESSLIST executes: the
 * process list with the reference's upper-case headers, in ID order, read
 * from the extension's schema.
 */
static void
ks_prepare_show(const char *schema)
{
	char	   *sql;
	RawStmt    *raw;
	CachedPlanSource *plansource;
	List	   *querytrees;
	PreparedStatement *existing;

	sql = psprintf("%s%s.processlist ORDER BY id", KS_SHOW_SELECT,
				   quote_identifier(schema));

	/*
	 * Replace the statement made by an earlier SHOW PROCESSLIST (the
	 * extension may have moved since), but never a user's statement that
	 * happens to have the name: that is told by its text and origin.
	 */
	existing = FetchPreparedStatement(KS_SHOW_STATEMENT, false);
	if (existing != NULL)
	{
		if (existing->from_sql ||
			strncmp(existing->plansource->query_string, KS_SHOW_SELECT,
					strlen(KS_SHOW_SELECT)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_PSTATEMENT),
					 errmsg("prepared statement \"%s\" already exists",
							KS_SHOW_STATEMENT),
					 errhint("SHOW PROCESSLIST uses that name; DEALLOCATE the statement to use SHOW PROCESSLIST.")));
		DropPreparedStatement(KS_SHOW_STATEMENT, false);
	}

#if PG_VERSION_NUM >= 140000
	raw = linitial_node(RawStmt, raw_parser(sql, RAW_PARSE_DEFAULT));
#else
	raw = linitial_node(RawStmt, raw_parser(sql));
#endif
	plansource = CreateCachedPlan(raw, sql, CreateCommandTag(raw->stmt));
#if PG_VERSION_NUM >= 150000
	querytrees = pg_analyze_and_rewrite_fixedparams(raw, sql, NULL, 0, NULL);
#else
	querytrees = pg_analyze_and_rewrite(raw, sql, NULL, 0, NULL);
#endif
	CompleteCachedPlan(plansource, querytrees, NULL, NULL, 0, NULL, NULL,
					   CURSOR_OPT_PARALLEL_OK, true);
	StorePreparedStatement(KS_SHOW_STATEMENT, plansource, false);
}

/*
 * SHOW PROCESSLIST parses in PostgreSQL as SHOW of a setting named
 * processlist, and the portal asks for the setting's one-column result
 * shape before any utility hook could answer it.  So the analysed SHOW is
 * replaced here, after parse analysis, keeping its location in the query
 * string.
 *
 * The replacement is EXECUTE of a prepared SELECT over the process list,
 * not the SELECT itself.  The caller decided from the raw SHOW that no
 * snapshot is needed, and a plain SELECT in its place would reach the
 * planner without one (assert-enabled servers check for it).  A utility
 * statement is not planned there; the prepared statement's plan is built
 * when EXECUTE runs, and plancache.c takes a snapshot for that itself,
 * judging from the SELECT it holds.  Its result shape is the SELECT's, so
 * rows come back over the simple, extended and prepared protocols.
 */
void
ks_rewrite_show(Query *query)
{
	VariableShowStmt *show;
	Oid			extoid;
	ExecuteStmt *exec;

	if (query->commandType != CMD_UTILITY ||
		!IsA(query->utilityStmt, VariableShowStmt))
		return;
	show = (VariableShowStmt *) query->utilityStmt;
	if (pg_strcasecmp(show->name, "processlist") != 0)
		return;

	extoid = get_extension_oid("kill_session", true);
	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("SHOW PROCESSLIST needs the kill_session extension in this database"),
				 errhint("Run CREATE EXTENSION kill_session;")));

	ks_prepare_show(get_namespace_name(ks_extension_schema(extoid)));

	exec = makeNode(ExecuteStmt);
	exec->name = pstrdup(KS_SHOW_STATEMENT);
	exec->params = NIL;
	query->utilityStmt = (Node *) exec;
}

/*---- The HINT for ALTER SYSTEM KILL SESSION ----*/

/*
 * Add to a syntax error in ALTER SYSTEM KILL SESSION the call that does the
 * same here, or what is wrong with its session string.  Runs inside
 * emit_log_hook (see kill_session.c): the scanner raises no error and
 * allocates nothing.
 */
void
ks_add_oracle_hint(ErrorData *edata)
{
	const char *query;
	const char *p;
	int			pos;
	int			i;
	size_t		len;
	char		call[128];

	if (edata->internalquery != NULL)
	{
		query = edata->internalquery;
		pos = edata->internalpos;
	}
	else
	{
		query = debug_query_string;
		pos = edata->cursorpos;
	}
	if (query == NULL || pos <= 0)
		return;

	/* The error's character position to a byte offset. */
	len = strlen(query);
	p = query;
	for (i = 1; i < pos && *p; i++)
		p += pg_mblen(p);

	switch (ks_find_kill_statement(query, len, p - query,
								   standard_conforming_strings,
								   call, sizeof(call)))
	{
		case KS_KILL_VALID:
			edata->hint = psprintf("On PostgreSQL run: %s", call);
			break;
		case KS_KILL_INVALID:
			edata->hint = pstrdup("On PostgreSQL run: SELECT kill_session('session_id'); "
								  "the session string given is not valid: it must be "
								  "'session_id' or 'session_id, serial#', with numbers "
								  "from SHOW PROCESSLIST.");
			break;
		case KS_KILL_NONE:
			break;
	}
}
